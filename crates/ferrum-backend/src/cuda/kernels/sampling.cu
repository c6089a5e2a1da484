// Token selection on the device, so that only token ids cross back to the host.
//
// Row parameters are SAMPLE_PARAMS u32 words per row: mode (0 = the host samples this row,
// 1 = greedy, 2 = random), temperature, top_k, top_p, min_p, uniform (floats as raw bits).
// The uniform comes from the request's own generator on the host, so a seeded request draws
// the same whatever else shares the batch.
//
// Every sum that decides a token is independent of thread timing (integer histograms, fixed-order
// scans and reductions), so a seeded request draws the same token on every run.
//
// Greedy takes the arg-max, lowest id on ties (the host sampler's rule). Random keeps the
// tokens that survive top-k, then top-p over the top-k set, then min-p, and draws by inverse
// CDF in vocabulary order with weights exp((logit - max) / temperature). Top-k and top-p
// find their cut-off logit by radix selection over the order-preserving bit pattern of the
// logits (four 8-bit rounds), so no sort is needed; tokens tied with the cut-off are kept.
#define SAMPLE_PARAMS 6
#define SAMPLE_THREADS 1024
#define ADJUST_WORDS 5

// Order-preserving map of a float to u32: a < b as floats iff ord(a) < ord(b) as integers.
__device__ __forceinline__ u32 f2ord(float f) {
    const u32 b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// A top-p weight in [0, 1] as a fixed-point integer of 2^-40 units (see sample_rows).
__device__ __forceinline__ u64 mass_fix(float w) { return __float2ull_rz(w * 1099511627776.0f); }

// A logit as f32; NaN counts as -inf so that it is never chosen.
__device__ __forceinline__ float logit_value(float x) { return x != x ? -F_INF : x; }

__device__ __forceinline__ float logit_at(const elem* row, u32 i) { return logit_value(e2f(row[i])); }

// f(i0 + e, logit e of v) for the 8 logits of one vector, in order; true as soon as f is.
template <typename F>
__device__ __forceinline__ bool scan_vec8(const vec8& v, u32 i0, F&& f) {
    float x[8];
    unpack8(v, x);
#pragma unroll
    for (int e = 0; e < 8; e++)
        if (f(i0 + e, logit_value(x[e]))) return true;
    return false;
}

// f(i, logit_at(row, i)) for this thread's share of the row, i = tid, tid + nt, ... in vector
// form: one block scanning a 150k-entry row is bound by load latency, so each thread issues
// four 8-element loads before it uses any. Each thread still sees its indices in increasing
// order (the arg-max's tie rule relies on it).
template <typename F>
__device__ __forceinline__ void scan_row(const elem* row, u32 vocab, F&& f) {
    const u32 tid = threadIdx.x, nt = blockDim.x;
    auto each = [&](u32 i, float x) {
        f(i, x);
        return false;
    };
    if ((vocab & 7) == 0 && (reinterpret_cast<u64>(row) & 15) == 0) {
        const u32 nv = vocab >> 3;
        u32 v = tid;
        for (; v + 3 * nt < nv; v += 4 * nt) {
            vec8 a[4];
#pragma unroll
            for (int u = 0; u < 4; u++) a[u] = ld8(row + 8 * (u64)(v + u * nt));
#pragma unroll
            for (int u = 0; u < 4; u++) scan_vec8(a[u], 8 * (v + u * nt), each);
        }
        for (; v < nv; v += nt) scan_vec8(ld8(row + 8 * (u64)v), 8 * v, each);
    } else {
        for (u32 i = tid; i < vocab; i += nt) f(i, logit_at(row, i));
    }
}

// f(i, logit_at(row, i)) for i in [lo, hi) in increasing order, four 8-element loads in flight
// when lo is a multiple of 8 and the row allows vectors; returns early when f returns true.
template <typename F>
__device__ __forceinline__ void scan_range(const elem* row, u32 vocab, u32 lo, u32 hi, F&& f) {
    u32 i = lo;
    if ((vocab & 7) == 0 && (lo & 7) == 0 && (reinterpret_cast<u64>(row) & 15) == 0) {
        for (; i + 32 <= hi; i += 32) {
            vec8 a[4];
#pragma unroll
            for (int u = 0; u < 4; u++) a[u] = ld8(row + i + 8 * u);
#pragma unroll
            for (int u = 0; u < 4; u++)
                if (scan_vec8(a[u], i + 8 * u, f)) return;
        }
    }
    for (; i < hi; ++i)
        if (f(i, logit_at(row, i))) return;
}

// Logit adjustments applied in place before sampling, one thread per (row, token) entry
// (the host merges entries per token, so no two threads touch the same logit):
//   l = l + pre_add;  l = l > 0 ? l / rep : l * rep;  l = l + post_add
// which is logit bias (or -inf for an EOS masked by min_tokens), then the repetition
// penalty, then frequency and presence penalties, in the host sampler's order.
extern "C" __global__ void apply_logit_adjust(elem* __restrict__ logits, const u32* __restrict__ ops,
                                              u32 n_ops, u32 vocab) {
    pdl_enter();
    const u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_ops) return;
    const u32* o = ops + (u64)i * ADJUST_WORDS;
    const u32 tok = o[1];
    if (tok >= vocab) return;
    elem* p = logits + (u64)o[0] * vocab + tok;
    float l = e2f(*p) + __uint_as_float(o[2]);
    const float rep = __uint_as_float(o[3]);
    l = l > 0.0f ? l / rep : l * rep;
    *p = f2e(l + __uint_as_float(o[4]));
}

// Warp-wide arg-max; every lane gets (value, index). Lowest index wins ties.
__device__ __forceinline__ void warp_argmax(float& v, u32& idx) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const u32 oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > v || (ov == v && oi < idx)) {
            v = ov;
            idx = oi;
        }
    }
}

// Block-wide arg-max; every thread gets (value, index). Lowest index wins ties.
__device__ __forceinline__ void block_argmax(float& v, u32& idx) {
    __shared__ float sv[32];
    __shared__ u32 si[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    warp_argmax(v, idx);
    __syncthreads();
    if (lane == 0) {
        sv[warp] = v;
        si[warp] = idx;
    }
    __syncthreads();
    const int nw = blockDim.x >> 5;
    v = lane < nw ? sv[lane] : -F_INF;
    idx = lane < nw ? si[lane] : 0xffffffffu;
    warp_argmax(v, idx);
}

// Inclusive prefix sum over the block in thread order; `total` gets the block's sum.
__device__ __forceinline__ float block_inclusive_scan(float v, float& total) {
    __shared__ float warp_tot[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float n = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += n;
    }
    __syncthreads();
    if (lane == 31) warp_tot[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        float w = lane < nw ? warp_tot[lane] : 0.0f;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float n = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += n;
        }
        if (lane < nw) warp_tot[lane] = w;
    }
    __syncthreads();
    if (warp > 0) v += warp_tot[warp - 1];
    total = warp_tot[(blockDim.x >> 5) - 1];
    return v;
}

// Whether a row draws without any cut-off (greedy, or temperature alone), so that
// `sample_split` takes it. The host applies the same test (sampling.rs, `split_row`) to decide
// which kernels to launch.
__device__ __forceinline__ bool split_row(const u32* p, u32 vocab) {
    const u32 mode = p[0], top_k = p[2];
    if (mode == 1) return true;
    return mode == 2 && (top_k == 0 || top_k >= vocab) && __uint_as_float(p[3]) >= 1.0f &&
           __uint_as_float(p[4]) <= 0.0f;
}

// One block of SAMPLE_THREADS per row; writes out[row] unless the host samples the row or,
// with `skip_split`, `sample_split` does.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_rows(const elem* __restrict__ logits, const u32* __restrict__ params, u32 vocab,
                u32* __restrict__ out, u32 skip_split) {
    pdl_enter();
    logits = after_wait(logits);
    const u32 r = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const u32* p = params + (u64)r * SAMPLE_PARAMS;
    const u32 mode = p[0];
    if (mode == 0 || (skip_split && split_row(p, vocab))) return;
    const elem* row = logits + (u64)r * vocab;

    float best = -F_INF;
    u32 best_i = 0xffffffffu;
    scan_row(row, vocab, [&](u32 i, float x) {
        if (x > best || best_i == 0xffffffffu) {
            best = x;
            best_i = i;
        }
    });
    block_argmax(best, best_i);
    if (mode == 1 || best == -F_INF) {
        if (tid == 0) out[r] = best_i;
        return;
    }

    const float temperature = fmaxf(__uint_as_float(p[1]), 1e-5f);
    const u32 top_k = p[2];
    const float top_p = __uint_as_float(p[3]);
    const float min_p = __uint_as_float(p[4]);
    const float u = __uint_as_float(p[5]);
    const float inv_t = 1.0f / temperature;
    // Every kept token has ord >= thr; -inf never is.
    u32 thr = f2ord(-F_INF) + 1;

    __shared__ u32 hist[256];
    __shared__ u64 hfix[256];
    __shared__ u32 sel_bin, sel_flag, sel_need;
    __shared__ u64 sel_rest_fix;

    if (top_k > 0 && top_k < vocab) {
        u32 prefix = 0, mask = 0, need = top_k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (u32 b = tid; b < 256; b += nt) hist[b] = 0;
            __syncthreads();
            scan_row(row, vocab, [&](u32, float x) {
                const u32 o = f2ord(x);
                if (o >= thr && (o & mask) == prefix) atomicAdd(&hist[(o >> shift) & 255u], 1u);
            });
            __syncthreads();
            if (tid == 0) {
                u32 acc = 0;
                sel_flag = 0;
                for (int b = 255; b >= 0; --b) {
                    if (acc + hist[b] >= need) {
                        sel_bin = (u32)b;
                        sel_flag = 1;
                        need -= acc;
                        break;
                    }
                    acc += hist[b];
                }
                sel_need = need;
            }
            __syncthreads();
            // Fewer than top_k candidates: nothing to cut.
            if (!sel_flag) break;
            need = sel_need;
            prefix |= sel_bin << shift;
            mask |= 255u << shift;
            if (shift == 0) thr = max(thr, prefix);
            __syncthreads();
        }
    }

    if (top_p < 1.0f) {
        // Masses are summed as fixed-point integers (units of 2^-40): integer sums do not
        // depend on the order in which threads add them, so the cut-off, and the token a seeded
        // request draws, are the same on every run and in every batch. A weight is at most 1
        // (the arg-max's, which is always kept), so 2^40 per token stays far below 2^64 for any
        // vocabulary, and the first round's sum is the total kept mass.
        u64 need = 0;
        u32 prefix = 0, mask = 0;
        bool cut = true;
        for (int shift = 24; shift >= 0 && cut; shift -= 8) {
            for (u32 b = tid; b < 256; b += nt) hfix[b] = 0;
            __syncthreads();
            scan_row(row, vocab, [&](u32, float x) {
                const u32 o = f2ord(x);
                if (o >= thr && (o & mask) == prefix)
                    atomicAdd(&hfix[(o >> shift) & 255u], mass_fix(__expf((x - best) * inv_t)));
            });
            __syncthreads();
            if (tid == 0) {
                if (shift == 24) {
                    u64 total = 0;
                    for (int b = 0; b < 256; ++b) total += hfix[b];
                    need = (u64)((double)total * (double)top_p);
                    if (need == 0) need = 1;
                }
                u64 acc = 0;
                int last = -1;
                sel_flag = 0;
                for (int b = 255; b >= 0; --b) {
                    if (hfix[b] > 0) last = b;
                    if (hfix[b] > 0 && acc + hfix[b] >= need) {
                        sel_bin = (u32)b;
                        sel_flag = 1;
                        need -= acc;
                        break;
                    }
                    acc += hfix[b];
                }
                // Every weight below 2^-40 counts 0: keep everything down to the last bin.
                if (!sel_flag && last >= 0) {
                    sel_bin = (u32)last;
                    sel_flag = 1;
                    need = hfix[last];
                }
                sel_rest_fix = need;
            }
            __syncthreads();
            if (!sel_flag) {
                cut = false;
            } else {
                need = sel_rest_fix;
                prefix |= sel_bin << shift;
                mask |= 255u << shift;
                if (shift == 0) thr = max(thr, prefix);
            }
            __syncthreads();
        }
    }

    // Inverse CDF in vocabulary order: thread t owns the contiguous range [t·chunk, (t+1)·chunk)
    // (a multiple of 8 long, so that the ranges start on vectors).
    const u32 chunk = ((vocab + nt - 1) / nt + 7) & ~7u;
    const u32 lo = min(vocab, tid * chunk), hi = min(vocab, lo + chunk);
    float s = 0.0f;
    scan_range(row, vocab, lo, hi, [&](u32, float x) {
        const float w = __expf((x - best) * inv_t);
        if (f2ord(x) >= thr && w >= min_p) s += w;
        return false;
    });
    float total;
    const float incl = block_inclusive_scan(s, total);
    // Each range starts exactly where the previous one ends, so the ranges tile [0, total).
    __shared__ float ends[SAMPLE_THREADS];
    __shared__ u32 pick;
    ends[tid] = incl;
    if (tid == 0) pick = 0xffffffffu;
    __syncthreads();
    const float excl = tid == 0 ? 0.0f : ends[tid - 1];
    const float target = u * total;
    if (s > 0.0f && target >= excl && (target < incl || tid == nt - 1)) {
        float acc = excl;
        u32 chosen = 0xffffffffu;
        scan_range(row, vocab, lo, hi, [&](u32 i, float x) {
            const float w = __expf((x - best) * inv_t);
            if (f2ord(x) >= thr && w >= min_p) {
                chosen = i;
                acc += w;
                return target < acc;
            }
            return false;
        });
        atomicMin(&pick, chosen);
    }
    __syncthreads();
    if (tid == 0) out[r] = pick == 0xffffffffu ? best_i : pick;
}

// Rows without a cut-off, spread over the card: the row is cut into slices of SPLIT_SLICE
// logits, one block of SPLIT_THREADS each (blockIdx.x the slice, blockIdx.y the row), every
// thread holding SPLIT_PER_THREAD consecutive logits in registers. A block finds its slice's
// arg-max (m_b, lowest id on ties) and, for a random row, s_b = Σ exp((x − m_b) / T) over the
// slice (each thread's sum in id order, then a fixed-order block scan), and leaves them in
// `scratch`; the last block of the row to finish (a counter per row, reset by that block)
// merges them. Greedy takes the arg-max of the earliest slice with the largest m_b (the lowest
// id overall, as in sample_rows). Random draws by inverse CDF in vocabulary order: slice
// weights W_b = s_b · exp((m_b − M) / T) in slice order pick the slice, whose sums the last block
// then forms again exactly as the slice's own block did, to pick the token. Every sum has a
// fixed order, so a seeded row draws the same token on every run. Same distribution as
// sample_rows; the rounding differs (the slice rescaling).
//
// scratch: `cap` row counters (zero between launches), then per row gridDim.x records of
// SPLIT_RECORD words (m_b, arg-max id, s_b).
#define SPLIT_THREADS 512
#define SPLIT_PER_THREAD 16
#define SPLIT_SLICE (SPLIT_THREADS * SPLIT_PER_THREAD)
#define SPLIT_RECORD 3
#define SPLIT_NONE 0xffffffffu

// This thread's SPLIT_PER_THREAD logits from id `lo` on; ids past the vocabulary read -inf.
__device__ __forceinline__ void split_load(const elem* row, u32 vocab, u32 lo, float x[SPLIT_PER_THREAD]) {
    if ((vocab & 7) == 0 && (reinterpret_cast<u64>(row) & 15) == 0 && lo + SPLIT_PER_THREAD <= vocab) {
#pragma unroll
        for (int h = 0; h < SPLIT_PER_THREAD / 8; h++) {
            float f[8];
            unpack8(ld8(row + lo + 8 * h), f);
#pragma unroll
            for (int e = 0; e < 8; e++) x[8 * h + e] = logit_value(f[e]);
        }
    } else {
#pragma unroll
        for (int e = 0; e < SPLIT_PER_THREAD; e++) x[e] = lo + e < vocab ? logit_at(row, lo + e) : -F_INF;
    }
}

// Σ exp((x − m) / T) over this thread's kept logits (every finite one), in id order.
__device__ __forceinline__ float split_weights(const float x[SPLIT_PER_THREAD], float m, float inv_t) {
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < SPLIT_PER_THREAD; e++)
        if (x[e] > -F_INF) s += __expf((x[e] - m) * inv_t);
    return s;
}

extern "C" __global__ void __launch_bounds__(SPLIT_THREADS)
    sample_split(const elem* __restrict__ logits, const u32* __restrict__ params, u32 vocab,
                 u32* __restrict__ out, u32* __restrict__ scratch, u32 cap) {
    pdl_enter();
    logits = after_wait(logits);
    const u32 r = blockIdx.y, b = blockIdx.x, nb = gridDim.x, tid = threadIdx.x;
    const u32* p = params + (u64)r * SAMPLE_PARAMS;
    if (!split_row(p, vocab)) return;
    const elem* row = logits + (u64)r * vocab;
    const bool greedy = p[0] == 1;
    const float inv_t = 1.0f / fmaxf(__uint_as_float(p[1]), 1e-5f);
    u32* rec = scratch + cap + (u64)r * nb * SPLIT_RECORD;

    float x[SPLIT_PER_THREAD];
    u32 lo = b * SPLIT_SLICE + tid * SPLIT_PER_THREAD;
    split_load(row, vocab, lo, x);
    float best = -F_INF;
    u32 best_i = SPLIT_NONE;
#pragma unroll
    for (int e = 0; e < SPLIT_PER_THREAD; e++)
        if (lo + e < vocab && (x[e] > best || best_i == SPLIT_NONE)) {
            best = x[e];
            best_i = lo + e;
        }
    block_argmax(best, best_i);
    float total = 0.0f;
    if (!greedy) block_inclusive_scan(split_weights(x, best, inv_t), total);

    __shared__ u32 is_last;
    if (tid == 0) {
        rec[b * SPLIT_RECORD] = __float_as_uint(best);
        rec[b * SPLIT_RECORD + 1] = best_i;
        rec[b * SPLIT_RECORD + 2] = __float_as_uint(total);
        __threadfence();
        is_last = atomicAdd(scratch + r, 1u) == nb - 1;
    }
    __syncthreads();
    if (!is_last) return;
    __threadfence();

    // The last block: merge the slices (thread 0), then find the token in the chosen one.
    __shared__ u32 pick_slice, pick_id;
    __shared__ float pick_m, pick_t;
    if (tid == 0) {
        scratch[r] = 0;
        const volatile u32* vr = rec;
        float m_all = -F_INF;
        u32 id_all = SPLIT_NONE;
        for (u32 k = 0; k < nb; k++) {
            const float m = __uint_as_float(vr[k * SPLIT_RECORD]);
            if (m > m_all || id_all == SPLIT_NONE) {
                m_all = m;
                id_all = vr[k * SPLIT_RECORD + 1];
            }
        }
        pick_id = id_all;
        pick_slice = SPLIT_NONE;
        if (!greedy && m_all > -F_INF) {
            float sum = 0.0f;
            for (u32 k = 0; k < nb; k++) {
                const float m = __uint_as_float(vr[k * SPLIT_RECORD]);
                const float scale = __expf((m - m_all) * inv_t);
                sum += __uint_as_float(vr[k * SPLIT_RECORD + 2]) * scale;
            }
            const float target = __uint_as_float(p[5]) * sum;
            // The slice whose share of [0, sum) holds the target; past the end (rounding), the
            // last slice with weight, from its end.
            float acc = 0.0f;
            u32 chosen = SPLIT_NONE;
            for (u32 k = 0; k < nb; k++) {
                const float m = __uint_as_float(vr[k * SPLIT_RECORD]);
                const float scale = __expf((m - m_all) * inv_t);
                const float w = __uint_as_float(vr[k * SPLIT_RECORD + 2]) * scale;
                if (w > 0.0f) {
                    chosen = k;
                    pick_m = m;
                    if (target < acc + w) {
                        pick_t = (target - acc) / scale;
                        break;
                    }
                    pick_t = F_INF;
                }
                acc += w;
            }
            pick_slice = chosen;
        }
    }
    __syncthreads();
    if (pick_slice == SPLIT_NONE) {
        if (tid == 0) out[r] = pick_id;
        return;
    }
    // The chosen slice's sums again, bit for bit as its block formed them (same logits, same m_b,
    // same order), so the thread ranges tile [0, s_b).
    lo = pick_slice * SPLIT_SLICE + tid * SPLIT_PER_THREAD;
    split_load(row, vocab, lo, x);
    const float s = split_weights(x, pick_m, inv_t);
    const float incl = block_inclusive_scan(s, total);
    __shared__ float ends[SPLIT_THREADS];
    __shared__ u32 pick;
    ends[tid] = incl;
    if (tid == 0) pick = SPLIT_NONE;
    __syncthreads();
    const float excl = tid == 0 ? 0.0f : ends[tid - 1];
    const float t = pick_t;
    if (s > 0.0f && t >= excl && (t < incl || tid == blockDim.x - 1)) {
        float acc = excl;
        u32 chosen = SPLIT_NONE;
#pragma unroll
        for (int e = 0; e < SPLIT_PER_THREAD; e++)
            if (x[e] > -F_INF) {
                chosen = lo + e;
                acc += __expf((x[e] - pick_m) * inv_t);
                if (t < acc) break;
            }
        atomicMin(&pick, chosen);
    }
    __syncthreads();
    if (tid == 0) out[r] = pick == SPLIT_NONE ? pick_id : pick;
}

// Async scheduling: decode inputs that the previous step sampled and the host has not read yet.
// input_ids[pairs[2i]] = sampled[pairs[2i + 1]], both indices checked on the host.
extern "C" __global__ void patch_input_ids(u32* __restrict__ input_ids, const u32* __restrict__ pairs, u32 n,
                                           const u32* __restrict__ sampled) {
    pdl_enter();
    const u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) input_ids[pairs[2 * i]] = sampled[pairs[2 * i + 1]];
}
