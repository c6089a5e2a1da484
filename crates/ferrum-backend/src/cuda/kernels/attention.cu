// Paged causal attention over varlen queries, GQA, a K/V cache of the module's element type
// (`elem`), f32 scores and sums.
//
// Shared conventions: token t belongs to sequence s = token_seq[t]; the sequence's queries are
// its last q_len context positions, so query i (0-based in this step) sees keys
// 0 .. ctx - q_len + i (inclusive). Keys live at slot table[j / block_size] * block_size +
// j % block_size of the layer's [slots, num_kv_heads * D] K and V slabs. Outputs are rounded to
// the element type once, after the final normalisation.
//
// Three kernels (the host picks per token, see `CudaBackend::attention`); this file holds the
// prefill one, attention_decode.cu the decode one:
// - attn_prefill_<D>: tokens of sequences with more than one query in the step. A block takes
//   up to `qt` consecutive queries of one sequence times `hg` query heads of one KV head, loads
//   each K/V tile of the context into shared memory once for all those rows, and keeps a
//   flash-attention style online softmax per row. In the 16-bit modules: tensor cores
//   (mma.sync) for D ≤ 128, CUDA cores for D = 256. In the f32 module: CUDA cores for D ≤ 128
//   (tensor cores would round the operands), and no instance for D = 256, whose f32 tiles do
//   not fit the static shared memory: the host runs paged_attention_256 there.
// - attn_decode_<D>: one query token, `hg` heads of one KV head, one chunk of the context per
//   block (split over the sequence); writes the output directly when the token's context is
//   one chunk, else an f32 partial (max, sum, unnormalised accumulator), and the block that
//   finishes a token's last chunk combines them.
// - paged_attention_<D> (attention_reference.cu): one block per (token, head) walking the
//   context key by key. The simplest formulation, kept as the reference the tests compare against.

// ---------------------------------------------------------------------------------------------
// attn_prefill_<D>, CUDA-core version (see above for where it is instantiated; the template
// takes any D that is a multiple of 16, with R and BK multiples of 16).
//
// Grid: (num_items · nsub, num_heads / hg), PF_THREADS threads seen as a 16 × 16 grid
// (ty = tid / 16, tx = tid % 16). Work item i is (seq, q_off) = (items[2i], items[2i+1]): the
// queries q_off .. q_off + PF_ITEM_TOKENS of that sequence; sub-block b of an item takes the
// queries q_off + b·qt .. + qt (qt · nsub = PF_ITEM_TOKENS, qt · hg ≤ R). Block row
// r = qi · hg + g is query qi of the block for head h0 + g; all hg heads share one KV head, so
// each K/V tile is read from the cache once for the qt · hg rows.
// Thread (ty, tx) owns rows ty + 16·i (i < R/16), keys tx + 16·j of each tile (j < BK/16) and
// output dimensions tx + 16·d (d < D/16): a row's softmax statistics live in the 16 lanes of
// one half-warp and are reduced with xor-shuffles of distance < 16.
// Shared memory: rows of Q [R], K [BK] and V [BK] padded by 16 bytes (W = D·sizeof(elem)/4 + 4
// words a row: in the 16-bit modules the 16-byte loads of 8 consecutive keys, as one
// quarter-warp issues them, fall in 8 distinct groups of 4 banks for every D here) and the
// tile's probabilities P f32 [R][BK + 1]. R = 32, BK = 16: 35 968 bytes for bf16 at D = 256
// and 35 904 for f32 at D = 128, under the 48 KiB of static shared memory. Global loads are
// 16 bytes.
#define PF_THREADS 256
#define PF_ITEM_TOKENS 64

__device__ __forceinline__ float half_warp_max(float v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int D, int R, int BK>
__device__ __forceinline__ void attn_prefill_impl(
    elem* __restrict__ out, const elem* __restrict__ q, const elem* __restrict__ kc,
    const elem* __restrict__ vc, const u32* __restrict__ block_tables,
    const u32* __restrict__ seq_lens, const u32* __restrict__ query_start_loc,
    const u32* __restrict__ items, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, u32 hg, u32 qt, u32 nsub, float scale) {
    pdl_enter();
    q = after_wait(q);
    kc = after_wait(kc);
    vc = after_wait(vc);
    // PC 16-byte pieces a row; C groups of 8 dimensions; EW elements a shared-memory row.
    constexpr int PC = D * (int)sizeof(elem) / 16, C = D / 8, W = 4 * PC + 4;
    constexpr int EW = W * 4 / (int)sizeof(elem);
    constexpr int RT = R / 16, KT = BK / 16, DT = D / 16;
    __shared__ __align__(16) u32 sq[R * W];
    __shared__ __align__(16) u32 sk[BK * W];
    __shared__ __align__(16) u32 sv[BK * W];
    __shared__ float sp[R * (BK + 1)];

    const u32 item = blockIdx.x / nsub, sub = blockIdx.x % nsub;
    const u32 s = items[2 * item];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 q0 = items[2 * item + 1] + sub * qt;
    if (q0 >= q_len) return;  // the last item of a sequence may hold fewer queries
    const u32 nq = min(qt, q_len - q0);
    const u32 rows = nq * hg;
    const u32 base = seq_lens[s] - q_len;  // context before this step's first query
    const u32 kend = base + q0 + nq;       // keys any row of the block sees are below this
    const u32 h0 = blockIdx.y * hg;
    const u32 kvh = h0 / (num_heads / num_kv_heads);
    const u64 width = (u64)num_kv_heads * D;
    const u32* table = block_tables + (u64)s * max_blocks;
    const u32 tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;

    for (u32 i = tid; i < R * PC; i += PF_THREADS) {
        const u32 r = i / PC, c = i % PC;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r < rows) {
            const u32 t = q_start + q0 + r / hg, h = h0 + r % hg;
            val = reinterpret_cast<const uint4*>(q + ((u64)t * num_heads + h) * D)[c];
        }
        *reinterpret_cast<uint4*>(&sq[r * W + 4 * c]) = val;
    }

    u32 limit[RT];  // exclusive causal bound of each owned row; 0 for rows past `rows`
    float m[RT], l[RT], o[RT][DT];
#pragma unroll
    for (int i = 0; i < RT; ++i) {
        const u32 r = ty + 16 * i;
        limit[i] = r < rows ? base + q0 + r / hg + 1 : 0;
        m[i] = -F_INF;
        l[i] = 0.0f;
#pragma unroll
        for (int d = 0; d < DT; ++d) o[i][d] = 0.0f;
    }

    for (u32 k0 = 0; k0 < kend; k0 += BK) {
        __syncthreads();  // Q is stored; the previous tile's K, V and P are consumed
        for (u32 i = tid; i < BK * PC; i += PF_THREADS) {
            const u32 j = i / PC, c = i % PC, key = k0 + j;
            uint4 kw = make_uint4(0, 0, 0, 0), vw = kw;
            if (key < kend) {
                const u64 slot = (u64)table[key / block_size] * block_size + key % block_size;
                const u64 off = (slot * width + (u64)kvh * D) / (16 / sizeof(elem)) + c;
                kw = reinterpret_cast<const uint4*>(kc)[off];
                vw = reinterpret_cast<const uint4*>(vc)[off];
            }
            *reinterpret_cast<uint4*>(&sk[j * W + 4 * c]) = kw;
            *reinterpret_cast<uint4*>(&sv[j * W + 4 * c]) = vw;
        }
        __syncthreads();

        float sc[RT][KT];
#pragma unroll
        for (int i = 0; i < RT; ++i)
#pragma unroll
            for (int j = 0; j < KT; ++j) sc[i][j] = 0.0f;
#pragma unroll 2
        for (int c = 0; c < C; ++c) {
            float qf[RT][8], kf[KT][8];
#pragma unroll
            for (int i = 0; i < RT; ++i)
                load_row<8>(qf[i], reinterpret_cast<const elem*>(&sq[(ty + 16 * i) * W]) + 8 * c);
#pragma unroll
            for (int j = 0; j < KT; ++j)
                load_row<8>(kf[j], reinterpret_cast<const elem*>(&sk[(tx + 16 * j) * W]) + 8 * c);
#pragma unroll
            for (int i = 0; i < RT; ++i)
#pragma unroll
                for (int j = 0; j < KT; ++j)
#pragma unroll
                    for (int e = 0; e < 8; ++e) sc[i][j] += qf[i][e] * kf[j][e];
        }

#pragma unroll
        for (int i = 0; i < RT; ++i) {
            float mx = -F_INF;
#pragma unroll
            for (int j = 0; j < KT; ++j) {
                const u32 key = k0 + tx + 16 * j;
                sc[i][j] = key < limit[i] ? sc[i][j] * scale : -F_INF;
                mx = fmaxf(mx, sc[i][j]);
            }
            mx = half_warp_max(mx);
            const float m_new = fmaxf(m[i], mx);
            // A row that has seen no key yet (or a padding row) keeps m = -inf; measuring from 0
            // then keeps every exponent -inf (→ 0) instead of NaN.
            const float ref = m_new == -F_INF ? 0.0f : m_new;
            const float corr = __expf(m[i] - ref);
            float ps = 0.0f;
#pragma unroll
            for (int j = 0; j < KT; ++j) {
                const float p = __expf(sc[i][j] - ref);
                sp[(ty + 16 * i) * (BK + 1) + tx + 16 * j] = p;
                ps += p;
            }
            // Each lane keeps its own part of the row sum; corr is the same in all 16 lanes, so
            // the parts add up at the end.
            l[i] = l[i] * corr + ps;
#pragma unroll
            for (int d = 0; d < DT; ++d) o[i][d] *= corr;
            m[i] = m_new;
        }
        __syncthreads();

        const u32 nk = min((u32)BK, kend - k0);
        const elem* svh = reinterpret_cast<const elem*>(sv);
        for (u32 j = 0; j < nk; ++j) {
            float p[RT];
#pragma unroll
            for (int i = 0; i < RT; ++i) p[i] = sp[(ty + 16 * i) * (BK + 1) + j];
#pragma unroll
            for (int d = 0; d < DT; ++d) {
                const float v = e2f(svh[j * EW + tx + 16 * d]);
#pragma unroll
                for (int i = 0; i < RT; ++i) o[i][d] += p[i] * v;
            }
        }
    }

#pragma unroll
    for (int i = 0; i < RT; ++i) {
        const float total = half_warp_sum(l[i]);
        const u32 r = ty + 16 * i;
        if (r < rows) {
            const u32 t = q_start + q0 + r / hg, h = h0 + r % hg;
            elem* dst = out + ((u64)t * num_heads + h) * D;
#pragma unroll
            for (int d = 0; d < DT; ++d) dst[tx + 16 * d] = f2e(o[i][d] / total);
        }
    }
}

#define PREFILL_KERNEL(D, R, BK)                                                                \
    extern "C" __global__ void __launch_bounds__(PF_THREADS) attn_prefill_##D(                  \
        elem* out, const elem* q, const elem* kc, const elem* vc, const u32* block_tables,       \
        const u32* seq_lens, const u32* query_start_loc, const u32* items, u32 max_blocks,       \
        u32 block_size, u32 num_heads, u32 num_kv_heads, u32 hg, u32 qt, u32 nsub,             \
        float scale) {                                                                          \
        attn_prefill_impl<D, R, BK>(out, q, kc, vc, block_tables, seq_lens, query_start_loc,    \
                                    items, max_blocks, block_size, num_heads, num_kv_heads, hg, \
                                    qt, nsub, scale);                                           \
    }

#if FERRUM_ELEM == 2
PREFILL_KERNEL(16, 32, 16)
PREFILL_KERNEL(32, 32, 16)
PREFILL_KERNEL(64, 32, 16)
PREFILL_KERNEL(96, 32, 16)
PREFILL_KERNEL(128, 32, 16)
#else
// Head size 256 runs on CUDA cores: the tensor-core kernel's per-thread output (D/2 floats)
// plus its q fragments would not fit the registers.
PREFILL_KERNEL(256, 32, 16)

// ---------------------------------------------------------------------------------------------
// attn_prefill_<D> for D ≤ 128 in the 16-bit modules: the same work split as above on tensor
// cores (mma.sync m16n8k16, bf16 or f16 inputs, f32 accumulation), in the FlashAttention-2
// arrangement.
//
// Grid as above (rows = qt · hg ≤ 64), TC_WARPS = 4 warps; warp w owns block rows
// 16w .. 16w + 15. Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16 or .f16): lane = 4·gid + tq;
// A (16 × 16, row-major) regs {a0a1, a2a3, a4a5, a6a7} hold rows (gid, gid + 8, gid, gid + 8)
// and columns 2tq, 2tq + 1 (+ 8 for the last two); B (16 × 8, "col") regs {b0b1, b2b3} hold
// column gid and rows 2tq, 2tq + 1 (+ 8); C/D (16 × 8 f32) {c0, c1, c2, c3} hold rows
// (gid, gid, gid + 8, gid + 8) and columns 2tq, 2tq + 1. A register packs two 16-bit values, the
// lower column in the low half.
// - S = Q·Kᵀ: A = the warp's q rows, loaded once from global memory into registers; B = the
//   K tile read from shared memory as K[key][dims] rows (Kᵀ column-major is K row-major).
// - The C fragments of S are, tile pair by tile pair, exactly the A fragments of P for O = P·V,
//   so P never leaves registers; it is rounded to the element type for the mma and the row sums use the
//   same rounded values, so the output is an exact weighted average of the values with weights
//   off by at most 2⁻⁸ (bf16) or 2⁻¹¹ (f16) relative.
// - V is stored transposed in shared memory (Vᵀ[dim][key]), so a B fragment of V is one 32-bit
//   word per register like the K fragments.
// Shared memory: K [TC_BK][D + 8] and Vᵀ [D][TC_BK + 8] 16-bit values (35 840 bytes at D = 128); the
// 8-element pads make the 8 rows × 4 words of a fragment load hit 32 distinct banks.
#define TC_WARPS 4
#define TC_BK 64

#if FERRUM_ELEM == 1
#define MMA_AB "f16"
#else
#define MMA_AB "bf16"
#endif

__device__ __forceinline__ void mma_16816(float* c, const u32* a, u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32." MMA_AB "." MMA_AB ".f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <int D>
__device__ __forceinline__ void attn_prefill_tc_impl(
    elem* __restrict__ out, const elem* __restrict__ q, const elem* __restrict__ kc,
    const elem* __restrict__ vc, const u32* __restrict__ block_tables,
    const u32* __restrict__ seq_lens, const u32* __restrict__ query_start_loc,
    const u32* __restrict__ items, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, u32 hg, u32 qt, u32 nsub, float scale) {
    pdl_enter();
    q = after_wait(q);
    kc = after_wait(kc);
    vc = after_wait(vc);
    constexpr int KS = D / 16;          // k-steps of Q·Kᵀ
    constexpr int NT = TC_BK / 8;       // 8-key column tiles of S
    constexpr int DN = D / 8;           // 8-dimension column tiles of O
    constexpr int C = D / 8;            // 16-byte pieces of a key row
    constexpr int WK = D / 2 + 4;       // words per K row in shared memory
    constexpr int WV = TC_BK / 2 + 4;   // words per Vᵀ row in shared memory
    __shared__ __align__(16) u32 sk[TC_BK * WK];
    __shared__ __align__(16) u32 sv[D * WV];

    const u32 item = blockIdx.x / nsub, sub = blockIdx.x % nsub;
    const u32 s = items[2 * item];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 q0 = items[2 * item + 1] + sub * qt;
    if (q0 >= q_len) return;  // the last item of a sequence may hold fewer queries
    const u32 nq = min(qt, q_len - q0);
    const u32 rows = nq * hg;
    const u32 base = seq_lens[s] - q_len;
    const u32 kend = base + q0 + nq;
    const u32 h0 = blockIdx.y * hg;
    const u32 kvh = h0 / (num_heads / num_kv_heads);
    const u64 width = (u64)num_kv_heads * D;
    const u32* table = block_tables + (u64)s * max_blocks;
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tq = lane & 3;
    // This lane's two rows (fragment rows gid and gid + 8 of the warp).
    const u32 ra = warp * 16 + gid, rb = ra + 8;
    const u32 lim_a = ra < rows ? base + q0 + ra / hg + 1 : 0;
    const u32 lim_b = rb < rows ? base + q0 + rb / hg + 1 : 0;
    const bool busy = warp * 16 < rows;  // warp-uniform: the warp has a real row

    u32 qa[KS][4];
    {
        const u32* qra = ra < rows ? reinterpret_cast<const u32*>(
                                         q + ((u64)(q_start + q0 + ra / hg) * num_heads + h0 +
                                              ra % hg) * D)
                                   : nullptr;
        const u32* qrb = rb < rows ? reinterpret_cast<const u32*>(
                                         q + ((u64)(q_start + q0 + rb / hg) * num_heads + h0 +
                                              rb % hg) * D)
                                   : nullptr;
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
            qa[ks][0] = qra ? qra[ks * 8 + tq] : 0u;
            qa[ks][1] = qrb ? qrb[ks * 8 + tq] : 0u;
            qa[ks][2] = qra ? qra[ks * 8 + 4 + tq] : 0u;
            qa[ks][3] = qrb ? qrb[ks * 8 + 4 + tq] : 0u;
        }
    }

    float o[DN][4];
#pragma unroll
    for (int dn = 0; dn < DN; ++dn) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    float m_a = -F_INF, m_b = -F_INF, l_a = 0.0f, l_b = 0.0f;
    elem* vt = reinterpret_cast<elem*>(sv);

    for (u32 k0 = 0; k0 < kend; k0 += TC_BK) {
        __syncthreads();  // the previous tile is consumed
        // Key-major assignment: the lanes of a warp take 32 consecutive keys, so the transposed
        // V stores of one instruction are 32 consecutive 16-bit values (no bank conflicts).
        for (u32 i = threadIdx.x; i < TC_BK * C; i += TC_WARPS * 32) {
            const u32 j = i % TC_BK, c = i / TC_BK, key = k0 + j;
            uint4 kw = make_uint4(0, 0, 0, 0), vw = kw;
            if (key < kend) {
                const u64 slot = (u64)table[key / block_size] * block_size + key % block_size;
                const u64 off = (slot * width + (u64)kvh * D) / 8 + c;
                kw = reinterpret_cast<const uint4*>(kc)[off];
                vw = reinterpret_cast<const uint4*>(vc)[off];
            }
            *reinterpret_cast<uint4*>(&sk[j * WK + 4 * c]) = kw;
            const u32 vwords[4] = {vw.x, vw.y, vw.z, vw.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                vt[(8 * c + 2 * e) * (2 * WV) + j] = (elem)(vwords[e] & 0xffffu);
                vt[(8 * c + 2 * e + 1) * (2 * WV) + j] = (elem)(vwords[e] >> 16);
            }
        }
        __syncthreads();
        if (!busy) continue;

        float sc[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
            const u32* kr = &sk[(nt * 8 + gid) * WK];
#pragma unroll
            for (int ks = 0; ks < KS; ++ks)
                mma_16816(sc[nt], qa[ks], kr[ks * 8 + tq], kr[ks * 8 + 4 + tq]);
        }

        float mx_a = -F_INF, mx_b = -F_INF;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const u32 key = k0 + nt * 8 + 2 * tq + e;
                sc[nt][e] = key < lim_a ? sc[nt][e] * scale : -F_INF;
                sc[nt][2 + e] = key < lim_b ? sc[nt][2 + e] * scale : -F_INF;
                mx_a = fmaxf(mx_a, sc[nt][e]);
                mx_b = fmaxf(mx_b, sc[nt][2 + e]);
            }
        }
        // A row lives in the 4 lanes of one gid.
#pragma unroll
        for (int x = 1; x < 4; x <<= 1) {
            mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, x));
            mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, x));
        }
        const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
        // Rows that have seen no key (padding rows) measure from 0: exponents stay -inf → 0.
        const float ref_a = new_a == -F_INF ? 0.0f : new_a;
        const float ref_b = new_b == -F_INF ? 0.0f : new_b;
        const float corr_a = __expf(m_a - ref_a), corr_b = __expf(m_b - ref_b);
        m_a = new_a;
        m_b = new_b;

        u32 pa[NT / 2][4];
        float ps_a = 0.0f, ps_b = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            const float p0 = rnd(__expf(sc[nt][0] - ref_a)), p1 = rnd(__expf(sc[nt][1] - ref_a));
            const float p2 = rnd(__expf(sc[nt][2] - ref_b)), p3 = rnd(__expf(sc[nt][3] - ref_b));
            ps_a += p0 + p1;
            ps_b += p2 + p3;
            pa[nt / 2][(nt % 2) * 2] = pack2(p0, p1);
            pa[nt / 2][(nt % 2) * 2 + 1] = pack2(p2, p3);
        }
        // Per-lane parts of the row sums; corr is the same in the row's 4 lanes.
        l_a = l_a * corr_a + ps_a;
        l_b = l_b * corr_b + ps_b;
#pragma unroll
        for (int dn = 0; dn < DN; ++dn) {
            o[dn][0] *= corr_a;
            o[dn][1] *= corr_a;
            o[dn][2] *= corr_b;
            o[dn][3] *= corr_b;
        }

#pragma unroll
        for (int kk = 0; kk < NT / 2; ++kk) {
#pragma unroll
            for (int dn = 0; dn < DN; ++dn) {
                const u32* vr = &sv[(dn * 8 + gid) * WV];
                mma_16816(o[dn], pa[kk], vr[kk * 8 + tq], vr[kk * 8 + 4 + tq]);
            }
        }
    }

#pragma unroll
    for (int x = 1; x < 4; x <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, x);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, x);
    }
    if (ra < rows) {
        u32* dst = reinterpret_cast<u32*>(
            out + ((u64)(q_start + q0 + ra / hg) * num_heads + h0 + ra % hg) * D);
#pragma unroll
        for (int dn = 0; dn < DN; ++dn) dst[dn * 4 + tq] = pack2(o[dn][0] / l_a, o[dn][1] / l_a);
    }
    if (rb < rows) {
        u32* dst = reinterpret_cast<u32*>(
            out + ((u64)(q_start + q0 + rb / hg) * num_heads + h0 + rb % hg) * D);
#pragma unroll
        for (int dn = 0; dn < DN; ++dn) dst[dn * 4 + tq] = pack2(o[dn][2] / l_b, o[dn][3] / l_b);
    }
}

#define PREFILL_TC_KERNEL(D)                                                                    \
    extern "C" __global__ void __launch_bounds__(TC_WARPS * 32) attn_prefill_##D(               \
        elem* out, const elem* q, const elem* kc, const elem* vc, const u32* block_tables,       \
        const u32* seq_lens, const u32* query_start_loc, const u32* items, u32 max_blocks,       \
        u32 block_size, u32 num_heads, u32 num_kv_heads, u32 hg, u32 qt, u32 nsub,             \
        float scale) {                                                                          \
        attn_prefill_tc_impl<D>(out, q, kc, vc, block_tables, seq_lens, query_start_loc, items, \
                                max_blocks, block_size, num_heads, num_kv_heads, hg, qt, nsub,  \
                                scale);                                                         \
    }

PREFILL_TC_KERNEL(16)
PREFILL_TC_KERNEL(32)
PREFILL_TC_KERNEL(64)
PREFILL_TC_KERNEL(96)
PREFILL_TC_KERNEL(128)
#endif
