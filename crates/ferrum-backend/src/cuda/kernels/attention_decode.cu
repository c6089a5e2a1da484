// Paged decode attention (one query token per sequence): the conventions of attention.cu
// (token → sequence, causal bound, slot of key j, one rounding of the output), which is
// compiled before this file in the same unit.

// attn_decode_<D>
//
// Grid: (num_decode_tokens, num_heads / hg, nchunks), DC_WARPS warps. Block (x, y, c) takes
// token tokens[x], query heads h0 = y·hg .. h0 + hg (hg ≤ DC_MAX_HG, one KV head) and keys
// c·chunk .. min((c+1)·chunk, limit). Warp w reads the keys kb + lane for kb = c·chunk + 32·w,
// + 32·DC_WARPS, ...: each lane computes the hg scores of its key against q (f32, pre-scaled,
// in shared memory, read as broadcasts), the warp updates one online softmax per head, then
// accumulates p·v over the 32 keys with lanes owning D/32 consecutive dimensions (coalesced
// value rows; for D < 32 the first D lanes own one each). The warps merge in shared memory
// (sacc: DC_WARPS · HG · D f32, 32 KiB at D = 256 and HG = DC_MAX_HG, reusing the bytes of q).
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
// attn_decode1_<D>: the same kernel for one head a block (hg = hg_long = 1, no regrouping).
// Without the arrays of eight heads it holds a whole key row (up to 256 bytes) and twice the
// value rows in registers, so a short context takes fewer rounds of loads. The host uses it
// for steps of few tokens whose contexts are all short; its results equal the grouped
// kernel's bit for bit (the same operations in the same order).
//
// Latency (a short context is a chain of dependent loads, not a bandwidth problem):
// - The step's metadata (token, sequence, context length, block table) is read before
//   `pdl_wait`: it was written by the copy that precedes the step's first kernel, which every
//   later kernel of the step starts after. Blocks that return early do so before the wait; the
//   block of chunk 0 always waits, so the next kernel still starts only after this one's
//   predecessors are done.
// - The key and value rows of the context before this step's own tokens are asked into L1
//   before the wait as well (see DC_PREFETCH).
// - A lane's key row (a piece of at most 128 bytes) and a warp's value rows (DC_VB at a time)
//   are loaded in straight-line code before the arithmetic that uses them, which branches on
//   the runtime head count: loads behind those branches would each wait for the last.
#define DC_WARPS 4
#define DC_MAX_HG 8
// Keys of a chunk whose key and value rows are fetched into L1 before the wait (two rounds of
// the block's keys: 128 KiB at head size 128 in bf16).
#define DC_PREFETCH 256u
#define DC_PREFETCH_MAX_BLOCKS 128u

// Elements of a key row loaded before use: the row, or the largest half, quarter ... of it
// (a multiple of 16) that fits 128 bytes (32 registers). With the value rows' 32, a D ≤ 128
// instance stays within 128 registers, so four blocks fit an SM (long contexts and large
// batches need them).
// The one-head kernel has the registers of the head arrays to spare: up to 256 bytes.
template <int D, int HG>
__device__ constexpr int dc_piece() {
    const int bytes = HG == 1 ? 256 : 128;
    int p = D;
    while (p * (int)sizeof(elem) > bytes && (p / 2) % 16 == 0) p /= 2;
    return p;
}

// An f32 another block of this grid wrote (through L2: this SM's L1 may hold an older copy).
__device__ __forceinline__ float ld_l2(const float* p) {
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
}

template <int D, int HG>
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
    // Value rows in flight per lane: 32 registers of them (64 with one head).
    constexpr int VR = HG == 1 ? 64 : 32;
    constexpr int DC_VB = VR / E < VR / 4 ? VR / E : VR / 4;
    constexpr int P = dc_piece<D, HG>();
    static_assert(D % P == 0 && P % 16 == 0 && 32 % DC_VB == 0, "decode tiling");
    // q while the keys are walked, then the warps' accumulators: the same bytes, with a
    // barrier in between.
    __shared__ __align__(16) float sbuf[DC_WARPS * HG * D];
    __shared__ float sm[DC_WARPS][HG], sl[DC_WARPS][HG];
    float(*sq)[D] = reinterpret_cast<float(*)[D]>(sbuf);
    float(*sacc)[HG][D] = reinterpret_cast<float(*)[HG][D]>(sbuf);

    const u32 t = tokens[blockIdx.x];
    const u32 s = token_seq[t];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 limit = seq_lens[s] - q_len + (t - q_start) + 1;
    const u32 c = blockIdx.z;
    const u32 cs = c * chunk;
    if (cs >= limit) return;  // a shorter context than the batch's longest: the merge skips it
    const u32 ce = min(cs + chunk, limit);
    u32 hg = HG == 1 ? 1u : hg_launch;
    if (HG > 1 && limit > short_ctx && hg_long > hg_launch) {
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

    // Keys before the step's own were stored by earlier steps, and no kernel of this step
    // writes their lines (a row of one KV head at one slot fills whole lines): the first
    // DC_PREFETCH keys' rows are requested into L1 now, before the wait, so that the loads after
    // it do not start the walk with a trip to memory. Only for launches that leave most SMs
    // to one block or none: with more blocks their loads hide each other's latency, and the
    // block-table reads this needs before the wait cost more than they save (8 tokens × 32
    // heads on an H100: 1% slower).
    if (gridDim.x * gridDim.y * gridDim.z <= DC_PREFETCH_MAX_BLOCKS) {
        const u32 fresh = seq_lens[s] - q_len;
        const u32 pe = min(min(ce, fresh), cs + DC_PREFETCH);
        constexpr u32 LINE = 128 / sizeof(elem);
        for (u32 j = cs + threadIdx.x; j < pe; j += blockDim.x) {
            const u64 row = (u64)(table[j / block_size] * block_size + j % block_size) * width + head_off;
#pragma unroll
            for (u32 o = 0; o < D; o += LINE) {
                prefetch_l1(kc + row + o);
                prefetch_l1(vc + row + o);
            }
        }
    }

    pdl_enter();
    q = after_wait(q);
    kc = after_wait(kc);
    vc = after_wait(vc);

    for (u32 i = threadIdx.x; i < HG * D; i += blockDim.x) {
        const u32 g = i / D, d = i % D;
        sq[g][d] = g < hg ? e2f(q[((u64)t * num_heads + h0 + g) * D + d]) * scale : 0.0f;
    }
    __syncthreads();

    float m[HG], l[HG], acc[HG][E];
#pragma unroll
    for (int g = 0; g < HG; ++g) {
        m[g] = -F_INF;
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[g][e] = 0.0f;
    }

    for (; kb < ce; kb += DC_WARPS * 32) {
        const u32 j = kb + lane;
        const bool valid = j < ce;
        float sc[HG];
#pragma unroll
        for (int g = 0; g < HG; ++g) sc[g] = 0.0f;
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
                    for (int g = 0; g < HG; ++g) {
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
        for (int g = 0; g < HG; ++g) {
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
                for (int g = 0; g < HG; ++g) {
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
    for (int g = 0; g < HG; ++g) {
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
    __shared__ float s_mx[HG], s_total[HG];
    constexpr u32 MT = 64;
    constexpr int MI = (HG * D + DC_WARPS * 32 - 1) / (DC_WARPS * 32);
    static_assert(HG * MT <= DC_WARPS * HG * D, "merge weights fit sbuf");
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

#define DECODE_KERNEL(NAME, D, HG)                                                              \
    extern "C" __global__ void __launch_bounds__(DC_WARPS * 32, D > 128 ? 3 : 4) NAME(          \
        elem* out, float* part, u32* sem, const elem* q, const elem* kc, const elem* vc,        \
        const u32* block_tables, const u32* seq_lens, const u32* query_start_loc,               \
        const u32* token_seq, const u32* tokens, u32 max_blocks, u32 block_size, u32 num_heads, \
        u32 num_kv_heads, u32 hg, u32 hg_long, u32 short_ctx, u32 chunk, u32 nchunks,           \
        float scale) {                                                                          \
        attn_decode_impl<D, HG>(out, part, sem, q, kc, vc, block_tables, seq_lens,             \
                                query_start_loc, token_seq, tokens, max_blocks, block_size,     \
                                num_heads, num_kv_heads, hg, hg_long, short_ctx, chunk,         \
                                nchunks, scale);                                                \
    }

#define DECODE_KERNELS(D)                          \
    DECODE_KERNEL(attn_decode_##D, D, DC_MAX_HG)   \
    DECODE_KERNEL(attn_decode1_##D, D, 1)

DECODE_KERNELS(16)
DECODE_KERNELS(32)
DECODE_KERNELS(64)
DECODE_KERNELS(96)
DECODE_KERNELS(128)
DECODE_KERNELS(256)
