// Paged causal attention over varlen queries, GQA, bf16 K/V cache with f32 scores and sums.
//
// Shared conventions: token t belongs to sequence s = token_seq[t]; the sequence's queries are
// its last q_len context positions, so query i (0-based in this step) sees keys
// 0 .. ctx - q_len + i (inclusive). Keys live at slot table[j / block_size] * block_size +
// j % block_size of the layer's [slots, num_kv_heads * D] K and V slabs. Outputs are rounded to
// bf16 once, after the final normalisation.
//
// Three kernels (the host picks per token, see `CudaBackend::attention`):
// - attn_prefill_<D>: tokens of sequences with more than one query in the step. A block takes
//   up to `qt` consecutive queries of one sequence times `hg` query heads of one KV head, loads
//   each K/V tile of the context into shared memory once for all those rows, and keeps a
//   flash-attention style online softmax per row.
// - attn_decode_<D>: one query token, `hg` heads of one KV head, one chunk of the context per
//   block (split over the sequence); writes the output directly when there is one chunk, else
//   an f32 partial (max, sum, unnormalised accumulator) that attn_decode_merge combines.
// - paged_attention_<D>: one block per (token, head) walking the context key by key. The
//   simplest formulation, kept as the reference the tests and benchmarks compare against.

// paged_attention_<D> (reference):
// Grid: (num_tokens, num_heads); one block of ATTN_WARPS warps per query head of one token.
// Token t belongs to sequence s = token_seq[t]; the sequence's queries are its last q_len
// context positions, so query i (0-based in this step) sees keys 0 .. ctx - q_len + i.
// Warp w takes keys w, w + ATTN_WARPS, ...; each lane holds D/32 consecutive dimensions of q,
// of its running output and of every key and value it reads (coalesced 2·D-byte rows).
// Heads narrower than 32 dimensions give one dimension to each of the first D lanes; the others
// add zeros to the dot products and store nothing.
// Each warp keeps an online softmax (running max m, sum l); the block merges the warps at the
// end. Scores and sums are f32; the output is rounded to bf16 once.
#define ATTN_WARPS 4

template <int E>
__device__ __forceinline__ void load_row(float* dst, const bf16* src) {
    if (E == 8) {
        const uint4 u = *reinterpret_cast<const uint4*>(src);
        const u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            dst[2 * i] = __uint_as_float(w[i] << 16);
            dst[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    } else if (E == 4) {
        const uint2 u = *reinterpret_cast<const uint2*>(src);
        dst[0] = __uint_as_float(u.x << 16);
        dst[1] = __uint_as_float(u.x & 0xffff0000u);
        dst[2] = __uint_as_float(u.y << 16);
        dst[3] = __uint_as_float(u.y & 0xffff0000u);
    } else if (E == 2) {
        const u32 u = *reinterpret_cast<const u32*>(src);
        dst[0] = __uint_as_float(u << 16);
        dst[1] = __uint_as_float(u & 0xffff0000u);
    } else {
#pragma unroll
        for (int i = 0; i < E; ++i) dst[i] = bf2f(src[i]);
    }
}

template <int D>
__device__ __forceinline__ void paged_attention_impl(
    bf16* __restrict__ out, const bf16* __restrict__ q, const bf16* __restrict__ kc,
    const bf16* __restrict__ vc, const u32* __restrict__ block_tables,
    const u32* __restrict__ seq_lens, const u32* __restrict__ query_start_loc,
    const u32* __restrict__ token_seq, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, float scale) {
    constexpr int E = D >= 32 ? D / 32 : 1;
    const u32 t = blockIdx.x, h = blockIdx.y;
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool active = lane * E < D;
    const u32 s = token_seq[t];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 limit = seq_lens[s] - q_len + (t - q_start) + 1;
    const u32 kvh = h / (num_heads / num_kv_heads);
    const u64 width = (u64)num_kv_heads * D;
    const u32* table = block_tables + (u64)s * max_blocks;

    float qr[E];
#pragma unroll
    for (int e = 0; e < E; ++e) qr[e] = 0.0f;
    if (active) load_row<E>(qr, q + ((u64)t * num_heads + h) * D + lane * E);
#pragma unroll
    for (int e = 0; e < E; ++e) qr[e] *= scale;

    float m = -F_INF, l = 0.0f, acc[E];
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = 0.0f;

    for (u32 j = warp; j < limit; j += ATTN_WARPS) {
        const u64 slot = (u64)table[j / block_size] * block_size + j % block_size;
        const u64 off = slot * width + (u64)kvh * D + lane * E;
        float kr[E], vr[E];
#pragma unroll
        for (int e = 0; e < E; ++e) kr[e] = vr[e] = 0.0f;
        if (active) {
            load_row<E>(kr, kc + off);
            load_row<E>(vr, vc + off);
        }
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) d += qr[e] * kr[e];
        d = warp_sum(d);
        const float m_new = fmaxf(m, d);
        const float corr = __expf(m - m_new);
        const float p = __expf(d - m_new);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[e] = acc[e] * corr + p * vr[e];
        m = m_new;
    }

    __shared__ float sm[ATTN_WARPS], sl[ATTN_WARPS];
    __shared__ float sacc[ATTN_WARPS][D];
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    if (active) {
#pragma unroll
        for (int e = 0; e < E; ++e) sacc[warp][lane * E + e] = acc[e];
    }
    __syncthreads();
    float mx = -F_INF;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; ++w) mx = fmaxf(mx, sm[w]);
    float wt[ATTN_WARPS], total = 0.0f;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; ++w) {
        wt[w] = sm[w] == -F_INF ? 0.0f : __expf(sm[w] - mx);
        total += sl[w] * wt[w];
    }
    bf16* o = out + ((u64)t * num_heads + h) * D;
    for (u32 d = threadIdx.x; d < D; d += blockDim.x) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < ATTN_WARPS; ++w) v += sacc[w][d] * wt[w];
        o[d] = f2bf(v / total);
    }
}

#define ATTENTION_KERNEL(D)                                                                     \
    extern "C" __global__ void __launch_bounds__(ATTN_WARPS * 32) paged_attention_##D(          \
        bf16* out, const bf16* q, const bf16* kc, const bf16* vc, const u32* block_tables,       \
        const u32* seq_lens, const u32* query_start_loc, const u32* token_seq, u32 max_blocks,   \
        u32 block_size, u32 num_heads, u32 num_kv_heads, float scale) {                          \
        paged_attention_impl<D>(out, q, kc, vc, block_tables, seq_lens, query_start_loc,         \
                                token_seq, max_blocks, block_size, num_heads, num_kv_heads,      \
                                scale);                                                          \
    }

ATTENTION_KERNEL(16)
ATTENTION_KERNEL(32)
ATTENTION_KERNEL(64)
ATTENTION_KERNEL(96)
ATTENTION_KERNEL(128)
ATTENTION_KERNEL(256)

// ---------------------------------------------------------------------------------------------
// attn_prefill_<D>
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
// Shared memory: bf16 rows of Q [R], K [BK] and V [BK] padded by 16 bytes (W = D/2 + 4 words a
// row: 16-byte loads of 8 consecutive keys, as one quarter-warp issues them, fall in 8 distinct
// groups of 4 banks for every D here) and the tile's probabilities P f32 [R][BK + 1].
// D ≤ 128: R = 64, BK = 32 (43 264 bytes at D = 128); D = 256: R = 32, BK = 16 (35 968 bytes).
// All under the 48 KiB of static shared memory. Global loads are 16 bytes (8 dimensions).
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
    bf16* __restrict__ out, const bf16* __restrict__ q, const bf16* __restrict__ kc,
    const bf16* __restrict__ vc, const u32* __restrict__ block_tables,
    const u32* __restrict__ seq_lens, const u32* __restrict__ query_start_loc,
    const u32* __restrict__ items, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, u32 hg, u32 qt, u32 nsub, float scale) {
    constexpr int RT = R / 16, KT = BK / 16, DT = D / 16, W = D / 2 + 4, C = D / 8;
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

    // 16-byte pieces (8 dimensions): C per row.
    for (u32 i = tid; i < R * C; i += PF_THREADS) {
        const u32 r = i / C, c = i % C;
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
        for (u32 i = tid; i < BK * C; i += PF_THREADS) {
            const u32 j = i / C, c = i % C, key = k0 + j;
            uint4 kw = make_uint4(0, 0, 0, 0), vw = kw;
            if (key < kend) {
                const u64 slot = (u64)table[key / block_size] * block_size + key % block_size;
                const u64 off = (slot * width + (u64)kvh * D) / 8 + c;
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
                load_row<8>(qf[i], reinterpret_cast<const bf16*>(&sq[(ty + 16 * i) * W + 4 * c]));
#pragma unroll
            for (int j = 0; j < KT; ++j)
                load_row<8>(kf[j], reinterpret_cast<const bf16*>(&sk[(tx + 16 * j) * W + 4 * c]));
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
        const bf16* svh = reinterpret_cast<const bf16*>(sv);
        for (u32 j = 0; j < nk; ++j) {
            float p[RT];
#pragma unroll
            for (int i = 0; i < RT; ++i) p[i] = sp[(ty + 16 * i) * (BK + 1) + j];
#pragma unroll
            for (int d = 0; d < DT; ++d) {
                const float v = bf2f(svh[j * 2 * W + tx + 16 * d]);
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
            bf16* dst = out + ((u64)t * num_heads + h) * D;
#pragma unroll
            for (int d = 0; d < DT; ++d) dst[tx + 16 * d] = f2bf(o[i][d] / total);
        }
    }
}

#define PREFILL_KERNEL(D, R, BK)                                                                \
    extern "C" __global__ void __launch_bounds__(PF_THREADS) attn_prefill_##D(                  \
        bf16* out, const bf16* q, const bf16* kc, const bf16* vc, const u32* block_tables,       \
        const u32* seq_lens, const u32* query_start_loc, const u32* items, u32 max_blocks,       \
        u32 block_size, u32 num_heads, u32 num_kv_heads, u32 hg, u32 qt, u32 nsub,             \
        float scale) {                                                                          \
        attn_prefill_impl<D, R, BK>(out, q, kc, vc, block_tables, seq_lens, query_start_loc,    \
                                    items, max_blocks, block_size, num_heads, num_kv_heads, hg, \
                                    qt, nsub, scale);                                           \
    }

PREFILL_KERNEL(16, 64, 32)
PREFILL_KERNEL(32, 64, 32)
PREFILL_KERNEL(64, 64, 32)
PREFILL_KERNEL(96, 64, 32)
PREFILL_KERNEL(128, 64, 32)
PREFILL_KERNEL(256, 32, 16)

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
// Output: with nchunks == 1 the bf16 result; else the f32 record
// ((x · num_heads + h) · nchunks + c) · (D + 2) of `part`: (max, sum, acc[D]) with acc and sum
// relative to max, for attn_decode_merge.
#define DC_WARPS 4
#define DC_MAX_HG 8

template <int D>
__device__ __forceinline__ void attn_decode_impl(
    bf16* __restrict__ out, float* __restrict__ part, const bf16* __restrict__ q,
    const bf16* __restrict__ kc, const bf16* __restrict__ vc,
    const u32* __restrict__ block_tables, const u32* __restrict__ seq_lens,
    const u32* __restrict__ query_start_loc, const u32* __restrict__ token_seq,
    const u32* __restrict__ tokens, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, u32 hg, u32 chunk, u32 nchunks, float scale) {
    constexpr int E = D >= 32 ? D / 32 : 1;
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
    const u32 h0 = blockIdx.y * hg;
    const u32 kvh = h0 / (num_heads / num_kv_heads);
    const u64 width = (u64)num_kv_heads * D;
    const u64 head_off = (u64)kvh * D;
    const u32* table = block_tables + (u64)s * max_blocks;
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool active = lane * E < D;

    for (u32 i = threadIdx.x; i < DC_MAX_HG * D; i += blockDim.x) {
        const u32 g = i / D, d = i % D;
        sq[g][d] = g < hg ? bf2f(q[((u64)t * num_heads + h0 + g) * D + d]) * scale : 0.0f;
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

    for (u32 kb = cs + warp * 32; kb < ce; kb += DC_WARPS * 32) {
        const u32 j = kb + lane;
        const bool valid = j < ce;
        const u32 slot = valid ? table[j / block_size] * block_size + j % block_size : 0;
        float sc[DC_MAX_HG];
#pragma unroll
        for (int g = 0; g < DC_MAX_HG; ++g) sc[g] = 0.0f;
        if (valid) {
            // 16 dimensions (one 32-byte sector of the key row) per step; q comes as float4
            // broadcasts.
            const bf16* kr = kc + (u64)slot * width + head_off;
#pragma unroll
            for (int d = 0; d < D; d += 16) {
                float kf[16];
                load_row<8>(kf, kr + d);
                load_row<8>(kf + 8, kr + d + 8);
#pragma unroll
                for (int g = 0; g < DC_MAX_HG; ++g) {
                    if (g < hg) {
                        float a = 0.0f;
#pragma unroll
                        for (int e = 0; e < 16; e += 4) {
                            const float4 qv = *reinterpret_cast<const float4*>(&sq[g][d + e]);
                            a += qv.x * kf[e] + qv.y * kf[e + 1] + qv.z * kf[e + 2] +
                                 qv.w * kf[e + 3];
                        }
                        sc[g] += a;
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
                sc[g] = p;
            }
        }
        const u32 nk = min(32u, ce - kb);
#pragma unroll 4
        for (u32 jj = 0; jj < nk; ++jj) {
            const u32 sj = __shfl_sync(0xffffffffu, slot, jj);
            float vr[E];
#pragma unroll
            for (int e = 0; e < E; ++e) vr[e] = 0.0f;
            if (active) load_row<E>(vr, vc + (u64)sj * width + head_off + lane * E);
#pragma unroll
            for (int g = 0; g < DC_MAX_HG; ++g) {
                if (g < hg) {
                    const float p = __shfl_sync(0xffffffffu, sc[g], jj);
#pragma unroll
                    for (int e = 0; e < E; ++e) acc[g][e] += p * vr[e];
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
        if (nchunks == 1) {
            out[((u64)t * num_heads + h0 + g) * D + d] = f2bf(v / total);
        } else {
            float* rec = part + (((u64)blockIdx.x * num_heads + h0 + g) * nchunks + c) * (D + 2);
            rec[2 + d] = v;
            if (d == 0) {
                rec[0] = mx;
                rec[1] = total;
            }
        }
    }
}

#define DECODE_KERNEL(D)                                                                        \
    extern "C" __global__ void __launch_bounds__(DC_WARPS * 32) attn_decode_##D(                \
        bf16* out, float* part, const bf16* q, const bf16* kc, const bf16* vc,                  \
        const u32* block_tables, const u32* seq_lens, const u32* query_start_loc,               \
        const u32* token_seq, const u32* tokens, u32 max_blocks, u32 block_size, u32 num_heads, \
        u32 num_kv_heads, u32 hg, u32 chunk, u32 nchunks, float scale) {                        \
        attn_decode_impl<D>(out, part, q, kc, vc, block_tables, seq_lens, query_start_loc,     \
                            token_seq, tokens, max_blocks, block_size, num_heads, num_kv_heads, \
                            hg, chunk, nchunks, scale);                                         \
    }

DECODE_KERNEL(16)
DECODE_KERNEL(32)
DECODE_KERNEL(64)
DECODE_KERNEL(96)
DECODE_KERNEL(128)
DECODE_KERNEL(256)

// Combines the chunk records of attn_decode_<D> (nchunks > 1). Grid: (num_decode_tokens,
// num_heads), any multiple of 32 threads. Token x's context has ceil(limit / chunk) chunks,
// each with at least one key, so every record read was written by this step and has a finite
// max.
extern "C" __global__ void attn_decode_merge(bf16* __restrict__ out, const float* __restrict__ part,
                                             const u32* __restrict__ seq_lens,
                                             const u32* __restrict__ query_start_loc,
                                             const u32* __restrict__ token_seq,
                                             const u32* __restrict__ tokens, u32 num_heads,
                                             u32 head_dim, u32 chunk, u32 nchunks) {
    const u32 x = blockIdx.x, h = blockIdx.y;
    const u32 t = tokens[x];
    const u32 s = token_seq[t];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 limit = seq_lens[s] - q_len + (t - q_start) + 1;
    const u32 nc = min((limit + chunk - 1) / chunk, nchunks);
    const u32 stride = head_dim + 2;
    const float* rec = part + ((u64)x * num_heads + h) * nchunks * stride;
    float mx = -F_INF;
    for (u32 c = 0; c < nc; ++c) mx = fmaxf(mx, rec[c * stride]);
    float total = 0.0f;
    for (u32 c = 0; c < nc; ++c) total += rec[c * stride + 1] * __expf(rec[c * stride] - mx);
    bf16* o = out + ((u64)t * num_heads + h) * head_dim;
    for (u32 d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float v = 0.0f;
        for (u32 c = 0; c < nc; ++c) v += rec[c * stride + 2 + d] * __expf(rec[c * stride] - mx);
        o[d] = f2bf(v / total);
    }
}
