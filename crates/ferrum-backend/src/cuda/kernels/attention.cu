// Paged causal attention over varlen queries, GQA, a K/V cache of the module's element type
// (`elem`), f32 scores and sums.
//
// Shared conventions: token t belongs to sequence s = token_seq[t]; the sequence's queries are
// its last q_len context positions, so query i (0-based in this step) sees keys
// 0 .. ctx - q_len + i (inclusive). Keys live at slot table[j / block_size] * block_size +
// j % block_size of the layer's [slots, num_kv_heads * D] K and V slabs. Outputs are rounded to
// the element type once, after the final normalisation.
//
// Three kernels (the host picks per token, see `CudaBackend::attention`):
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

// ---------------------------------------------------------------------------------------------
// attn_decode_<D>
//
// Grid: (num_decode_tokens, num_heads / hg, nchunks), DC_WARPS warps. Block (x, y, c) takes
// token tokens[x], query heads h0 = y·hg .. h0 + hg (hg ≤ DC_MAX_HG, one KV head) and keys
// c·chunk .. min((c+1)·chunk, limit). Warp w reads the keys kb + lane for kb = c·chunk + 32·w,
// + 32·DC_WARPS, ...: each lane computes the hg scores of its key against q (f32, pre-scaled,
// in shared memory, read as broadcasts), the warp updates one online softmax per head, then
// accumulates p·v over the 32 keys with lanes owning D/32 consecutive dimensions (coalesced
// value rows; for D < 32 the first D lanes own one each). The warps merge in shared memory
// (sacc: DC_WARPS · DC_MAX_HG · D f32, 32 KiB at D = 256, reusing the bytes of q).
// Output: for a token whose context is one chunk (limit ≤ chunk), the result in the element
// type. Else each chunk's block writes the f32 record ((x · num_heads + h) · nchunks + c) ·
// (D + 2) of `part`: (max, sum, acc[D]) with acc and sum relative to max; then counts itself
// done on sem[x · num_heads + h0] (zero before the launch), and the block that brings the
// count to the token's chunk count merges the records into the output (in a fixed order, so
// the result does not depend on which block was last) and sets the count back to zero.
// A token's one-chunk result equals its merge over one record bit for bit (exp(0) = 1).
// Launched with hg = 1 for steps of few tokens (more blocks for a latency-bound kernel), a
// token whose context is longer than short_ctx is still taken hg_long heads at a time (by the
// first block of each such group; the others return) so that its keys are read once for them.
// The arithmetic of a head is the same either way.
//
// Latency (a short context is a chain of dependent loads, not a bandwidth problem):
// - The step's metadata (token, sequence, context length, block table) is read before
//   `pdl_wait`: it was written by the copy that precedes the step's first kernel, which every
//   later kernel of the step starts after. Blocks that return early do so before the wait; the
//   block of chunk 0 always waits, so the next kernel still starts only after this one's
//   predecessors are done.
// - A lane's key row (a piece of at most 128 bytes) and a warp's value rows (DC_VB at a time)
//   are loaded in straight-line code before the arithmetic that uses them, which branches on
//   the runtime head count: loads behind those branches would each wait for the last.
#define DC_WARPS 4
#define DC_MAX_HG 8

// Elements of a key row loaded before use: the row, or the largest half, quarter ... of it
// (a multiple of 16) that fits 128 bytes (32 registers). With the value rows' 32, a D ≤ 128
// instance stays within 128 registers, so four blocks fit an SM (long contexts and large
// batches need them).
template <int D>
__device__ constexpr int dc_piece() {
    int p = D;
    while (p * (int)sizeof(elem) > 128 && (p / 2) % 16 == 0) p /= 2;
    return p;
}

// An f32 another block of this grid wrote (through L2: this SM's L1 may hold an older copy).
__device__ __forceinline__ float ld_l2(const float* p) {
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
}

template <int D>
__device__ __forceinline__ void attn_decode_impl(
    elem* __restrict__ out, float* __restrict__ part, u32* __restrict__ sem,
    const elem* __restrict__ q,
    const elem* __restrict__ kc, const elem* __restrict__ vc,
    const u32* __restrict__ block_tables, const u32* __restrict__ seq_lens,
    const u32* __restrict__ query_start_loc, const u32* __restrict__ token_seq,
    const u32* __restrict__ tokens, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, u32 hg_launch, u32 hg_long, u32 short_ctx, u32 chunk, u32 nchunks,
    float scale) {
    constexpr int E = D >= 32 ? D / 32 : 1;
    // Value rows in flight per lane: 32 registers of them.
    constexpr int DC_VB = 32 / E < 8 ? 32 / E : 8;
    constexpr int P = dc_piece<D>();
    static_assert(D % P == 0 && P % 16 == 0 && 32 % DC_VB == 0, "decode tiling");
    // q while the keys are walked, then the warps' accumulators: the same bytes, with a
    // barrier in between.
    __shared__ __align__(16) float sbuf[DC_WARPS * DC_MAX_HG * D];
    __shared__ float sm[DC_WARPS][DC_MAX_HG], sl[DC_WARPS][DC_MAX_HG];
    float(*sq)[D] = reinterpret_cast<float(*)[D]>(sbuf);
    float(*sacc)[DC_MAX_HG][D] = reinterpret_cast<float(*)[DC_MAX_HG][D]>(sbuf);

    const u32 t = tokens[blockIdx.x];
    const u32 s = token_seq[t];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 limit = seq_lens[s] - q_len + (t - q_start) + 1;
    const u32 c = blockIdx.z;
    const u32 cs = c * chunk;
    if (cs >= limit) return;  // a shorter context than the batch's longest: the merge skips it
    const u32 ce = min(cs + chunk, limit);
    u32 hg = hg_launch;
    if (limit > short_ctx && hg_long > hg_launch) {
        if (blockIdx.y % (hg_long / hg_launch) != 0) return;
        hg = hg_long;
    }
    const u32 h0 = blockIdx.y * hg_launch;
    const u32 kvh = h0 / (num_heads / num_kv_heads);
    const u64 width = (u64)num_kv_heads * D;
    const u64 head_off = (u64)kvh * D;
    const u32* table = block_tables + (u64)s * max_blocks;
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool active = lane * E < D;
    // The first key of this lane, and its slot (the block table is metadata too).
    u32 kb = cs + warp * 32;
    u32 slot = kb + lane < ce ? table[(kb + lane) / block_size] * block_size +
                                    (kb + lane) % block_size
                              : 0;

    pdl_enter();
    q = after_wait(q);
    kc = after_wait(kc);
    vc = after_wait(vc);

    for (u32 i = threadIdx.x; i < DC_MAX_HG * D; i += blockDim.x) {
        const u32 g = i / D, d = i % D;
        sq[g][d] = g < hg ? e2f(q[((u64)t * num_heads + h0 + g) * D + d]) * scale : 0.0f;
    }
    __syncthreads();

    float m[DC_MAX_HG], l[DC_MAX_HG], acc[DC_MAX_HG][E];
#pragma unroll
    for (int g = 0; g < DC_MAX_HG; ++g) {
        m[g] = -F_INF;
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[g][e] = 0.0f;
    }

    for (; kb < ce; kb += DC_WARPS * 32) {
        const u32 j = kb + lane;
        const bool valid = j < ce;
        float sc[DC_MAX_HG];
#pragma unroll
        for (int g = 0; g < DC_MAX_HG; ++g) sc[g] = 0.0f;
        if (valid) {
            const elem* kr = kc + (u64)slot * width + head_off;
#pragma unroll
            for (int p0 = 0; p0 < D; p0 += P) {
                vec8 kv[P / 8];
#pragma unroll
                for (int i = 0; i < P / 8; ++i) kv[i] = ld8(kr + p0 + 8 * i);
                asm volatile("" ::: "memory");
                // 16 dimensions per step; q comes as float4 broadcasts.
#pragma unroll
                for (int i = 0; i < P / 8; i += 2) {
                    float kf[16];
                    unpack8(kv[i], kf);
                    unpack8(kv[i + 1], kf + 8);
                    const int d = p0 + 8 * i;
#pragma unroll
                    for (int g = 0; g < DC_MAX_HG; ++g) {
                        if (g < hg) {
                            float a = 0.0f;
#pragma unroll
                            for (int e = 0; e < 16; e += 4) {
                                const float4 qv =
                                    *reinterpret_cast<const float4*>(&sq[g][d + e]);
                                a += qv.x * kf[e] + qv.y * kf[e + 1] + qv.z * kf[e + 2] +
                                     qv.w * kf[e + 3];
                            }
                            sc[g] += a;
                        }
                    }
                }
            }
        }
        // Lane 0's key is always valid (kb < ce), so every new max is finite.
#pragma unroll
        for (int g = 0; g < DC_MAX_HG; ++g) {
            if (g < hg) {
                const float x = valid ? sc[g] : -F_INF;
                const float m_new = fmaxf(m[g], warp_max(x));
                const float corr = __expf(m[g] - m_new);
                const float p = __expf(x - m_new);
                l[g] = l[g] * corr + p;  // per lane; the warp sums at the end
#pragma unroll
                for (int e = 0; e < E; ++e) acc[g][e] *= corr;
                m[g] = m_new;
                sc[g] = p;  // 0 for a lane past the chunk's end
            }
        }
        const u32 nk = min(32u, ce - kb);
        const u32 here = slot;
        // The next iteration's slot, loaded while this one's values are.
        const u32 jn = j + DC_WARPS * 32;
        if (jn < ce) slot = table[jn / block_size] * block_size + jn % block_size;
        for (u32 j0 = 0; j0 < nk; j0 += DC_VB) {
            float vr[DC_VB][E];
#pragma unroll
            for (int i = 0; i < DC_VB; ++i) {
                // Keys past the chunk's end may sit in never-written slots: they reread the
                // last key's values (weight 0) so that no load is conditional.
                const u32 sj = __shfl_sync(0xffffffffu, here, min(j0 + i, nk - 1));
                const u32 col = active ? lane * E : 0;
                load_row<E>(vr[i], vc + (u64)sj * width + head_off + col);
            }
            // Every load above is issued before the products below wait on the first.
            asm volatile("" ::: "memory");
#pragma unroll
            for (int i = 0; i < DC_VB; ++i) {
#pragma unroll
                for (int g = 0; g < DC_MAX_HG; ++g) {
                    if (g < hg) {
                        // p is 0 past the chunk's end, and vr too.
                        const float p = __shfl_sync(0xffffffffu, sc[g], j0 + i);
#pragma unroll
                        for (int e = 0; e < E; ++e) acc[g][e] += p * vr[i][e];
                    }
                }
            }
        }
    }

    __syncthreads();  // every warp is done with q before sacc overwrites it
#pragma unroll
    for (int g = 0; g < DC_MAX_HG; ++g) {
        if (g < hg) {
            const float lt = warp_sum(l[g]);
            if (lane == 0) {
                sm[warp][g] = m[g];
                sl[warp][g] = lt;
            }
            if (active) {
#pragma unroll
                for (int e = 0; e < E; ++e) sacc[warp][g][lane * E + e] = acc[g][e];
            }
        }
    }
    __syncthreads();
    // Chunks of this token's context, each with at least one key.
    const u32 nc = min((limit + chunk - 1) / chunk, nchunks);
    const u64 stride = D + 2;
    for (u32 i = threadIdx.x; i < hg * D; i += blockDim.x) {
        const u32 g = i / D, d = i % D;
        float mx = -F_INF;
#pragma unroll
        for (int w = 0; w < DC_WARPS; ++w) mx = fmaxf(mx, sm[w][g]);
        float total = 0.0f, v = 0.0f;
#pragma unroll
        for (int w = 0; w < DC_WARPS; ++w) {
            // A warp that had no key of this chunk has m = -inf and nothing to add.
            const float wt = sm[w][g] == -F_INF ? 0.0f : __expf(sm[w][g] - mx);
            total += sl[w][g] * wt;
            v += sacc[w][g][d] * wt;
        }
        if (nc == 1) {
            out[((u64)t * num_heads + h0 + g) * D + d] = f2e(v / total);
        } else {
            float* rec = part + (((u64)blockIdx.x * num_heads + h0 + g) * nchunks + c) * stride;
            rec[2 + d] = v;
            if (d == 0) {
                rec[0] = mx;
                rec[1] = total;
            }
        }
    }
    if (nc == 1) return;

    // Records out before the count goes up; the last block reads everyone's after it.
    __shared__ u32 last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        u32* count = sem + (u64)blockIdx.x * num_heads + h0;
        last = atomicAdd(count, 1u) == nc - 1;
        if (last) *count = 0;  // every other chunk has counted: ready for the next launch
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    // The merge, with every load of a pass in flight at once: per head the largest max and
    // the weighted sum of sums (a warp per head, lanes over records), then per 64 records
    // their weights exp(max_k − mx) in shared memory (sacc's bytes, read above before the
    // barrier) and each thread's (head, dimension) outputs over those records, in order.
    __shared__ float s_mx[DC_MAX_HG], s_total[DC_MAX_HG];
    constexpr u32 MT = 64;
    constexpr int MI = (DC_MAX_HG * D + DC_WARPS * 32 - 1) / (DC_WARPS * 32);
    static_assert(DC_MAX_HG * MT <= DC_WARPS * DC_MAX_HG * D, "merge weights fit sbuf");
    const u64 head_recs = (u64)nchunks * stride;
    const float* recs = part + ((u64)blockIdx.x * num_heads + h0) * head_recs;
    for (u32 g = warp; g < hg; g += DC_WARPS) {
        const float* r = recs + g * head_recs;
        float mx = -F_INF;
        for (u32 k = lane; k < nc; k += 32) mx = fmaxf(mx, ld_l2(r + k * stride));
        mx = warp_max(mx);
        float total = 0.0f;
        for (u32 k = lane; k < nc; k += 32)
            total += ld_l2(r + k * stride + 1) * __expf(ld_l2(r + k * stride) - mx);
        total = warp_sum(total);
        if (lane == 0) {
            s_mx[g] = mx;
            s_total[g] = total;
        }
    }
    __syncthreads();
    float* wts = sbuf;
    float v[MI];
#pragma unroll
    for (int j = 0; j < MI; ++j) v[j] = 0.0f;
    for (u32 k0 = 0; k0 < nc; k0 += MT) {
        const u32 kn = min(MT, nc - k0);
        for (u32 i = threadIdx.x; i < hg * MT; i += blockDim.x) {
            const u32 g = i / MT, k = i % MT;
            wts[i] = k < kn ? __expf(ld_l2(recs + g * head_recs + (k0 + k) * stride) - s_mx[g])
                            : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < MI; ++j) {
            const u32 i = threadIdx.x + j * DC_WARPS * 32;
            if (i < hg * D) {
                const u32 g = i / D, d = i % D;
                const float* r = recs + g * head_recs + (u64)k0 * stride + 2 + d;
                for (u32 k = 0; k < kn; k += 8) {
                    float x[8];
#pragma unroll
                    for (int u = 0; u < 8; ++u) x[u] = k + u < kn ? ld_l2(r + (k + u) * stride) : 0.0f;
#pragma unroll
                    for (int u = 0; u < 8; ++u) v[j] += x[u] * wts[g * MT + k + u];
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < MI; ++j) {
        const u32 i = threadIdx.x + j * DC_WARPS * 32;
        if (i < hg * D) {
            const u32 g = i / D, d = i % D;
            out[((u64)t * num_heads + h0 + g) * D + d] = f2e(v[j] / s_total[g]);
        }
    }
}

#define DECODE_KERNEL(D)                                                                        \
    extern "C" __global__ void __launch_bounds__(DC_WARPS * 32, D > 128 ? 3 : 4)               \
        attn_decode_##D(                                                                        \
        elem* out, float* part, u32* sem, const elem* q, const elem* kc, const elem* vc,        \
        const u32* block_tables, const u32* seq_lens, const u32* query_start_loc,               \
        const u32* token_seq, const u32* tokens, u32 max_blocks, u32 block_size, u32 num_heads, \
        u32 num_kv_heads, u32 hg, u32 hg_long, u32 short_ctx, u32 chunk, u32 nchunks,           \
        float scale) {                                                                          \
        attn_decode_impl<D>(out, part, sem, q, kc, vc, block_tables, seq_lens, query_start_loc, \
                            token_seq, tokens, max_blocks, block_size, num_heads, num_kv_heads, \
                            hg, hg_long, short_ctx, chunk, nchunks, scale);                     \
    }

DECODE_KERNEL(16)
DECODE_KERNEL(32)
DECODE_KERNEL(64)
DECODE_KERNEL(96)
DECODE_KERNEL(128)
DECODE_KERNEL(256)
