// Linear layers for steps of a few tokens (decode): y[m, :] = x[m, :] · Wᵀ for M ≤ 8 rows.
//
// At one to eight rows a linear layer is one pass over its weights, and cuBLAS reaches about
// half of the card's bandwidth on these shapes. Here a block streams R weight rows with 8-element
// vector loads (two iterations' loads issued before their arithmetic) and each thread keeps R × M
// accumulators, so every weight byte is read once for all M rows. x is small and re-read
// from L2 once per R rows: R grows with M so that those reads stay below the weight stream
// (gemv_rows / gemv_silu_rows; the host mirrors them).
//
// `gemv_<M>` serves up to three matrices that read the same x in one launch (q, k and v):
// blocks [0, B0) compute segment 0, [B0, B0 + B1) segment 1, the rest segment 2, with
// B_s = ceil(n_s / R). `gemv_silu_<M>` reads a gate and an up row per output column and
// writes silu(gate) · up, so the MLP's two projections and its activation are one launch.
//
// Two fused forms replace the RMSNorm between layers at these row counts:
// - `gemv_norm_<M>` and `gemv_silu_norm_<M>` take the residual stream h as x and the norm's
//   weight g, and compute W · (g ⊙ h) and Σh² in the same pass; each output is then scaled by
//   rsqrt(Σh²/k + eps). The sum of squares rides on the block's final reduction, so the norm
//   costs neither a launch nor a round trip before the first product. The normalized input is
//   never rounded to the element type (the separate norm rounds it twice), which moves
//   results by about one such rounding of the input.
// - `gemv_res_<M>` adds its (rounded) output into y, the residual stream, and rounds again: a
//   linear layer followed by the residual add, bit for bit.
//
// Requirements, checked on the host: k % 8 == 0 (with allocator-aligned bases every row is
// aligned to 8 elements), 1 ≤ M ≤ 8, every n_s ≥ 1 for segments with blocks.
// Numerics as the op-by-op path: f32 accumulation, one rounding to the element type as a GEMM's; a bias is
// added to the rounded value and rounded again; silu(gate) is rounded before the product.

#define GEMV_THREADS 128

// Output rows per block: of gemv_<M>, and of gemv_silu_<M> (which reads two weight rows per
// output row).
__host__ __device__ constexpr int gemv_rows(int m) { return m <= 2 ? 4 : 8; }
__host__ __device__ constexpr int gemv_silu_rows(int m) { return m <= 2 ? 2 : 4; }

// acc has NR weight rows and, with NORM, one more row for Σx² (x unscaled); with NORM x is
// multiplied by the norm weight `gv` before the products.
template <int M, int NR, bool NORM>
__device__ __forceinline__ void gemv_step(const elem* __restrict__ x, u32 k, u32 v, const vec8 wv[NR],
                                          const vec8& gv, float acc[NR + NORM][M]) {
    float gf[8];
    if constexpr (NORM) unpack8(gv, gf);
#pragma unroll
    for (int m = 0; m < M; m++) {
        float xf[8];
        unpack8(ldcg8(x + (u64)m * k + 8 * (u64)v), xf);
        if constexpr (NORM) {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                acc[NR][m] = fmaf(xf[i], xf[i], acc[NR][m]);
                xf[i] *= gf[i];
            }
        }
#pragma unroll
        for (int r = 0; r < NR; r++) {
            float wf[8];
            unpack8(wv[r], wf);
#pragma unroll
            for (int i = 0; i < 8; i++) acc[r][m] = fmaf(wf[i], xf[i], acc[r][m]);
        }
    }
}

// acc[r][m] += W_r · x_m over this thread's share of the k/8 vectors. The first weight loads
// are issued before `pdl_wait`: weights are never written, so they may overlap the previous
// kernel's tail. x is that kernel's output and is read with `ldcg8` (volatile asm, through
// L2): the compiler may move `__ldg` loads, which it takes as invariant, above the wait.
template <int M, int NR, bool NORM>
__device__ __forceinline__ void gemv_accumulate(const elem* __restrict__ x, u32 k, const elem* const w[NR],
                                                const elem* __restrict__ g, float acc[NR + NORM][M]) {
    const u32 nv = k >> 3;
    u32 v = threadIdx.x;
    bool waited = false;
    for (; v + GEMV_THREADS < nv; v += 2 * GEMV_THREADS) {
        vec8 a[NR], b[NR], ga, gb;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            a[r] = ldg8(w[r] + 8 * (u64)v);
            b[r] = ldg8(w[r] + 8 * (u64)(v + GEMV_THREADS));
        }
        if constexpr (NORM) {
            ga = ldg8(g + 8 * (u64)v);
            gb = ldg8(g + 8 * (u64)(v + GEMV_THREADS));
        }
        if (!waited) {
            pdl_enter();
            waited = true;
        }
        gemv_step<M, NR, NORM>(x, k, v, a, ga, acc);
        gemv_step<M, NR, NORM>(x, k, v + GEMV_THREADS, b, gb, acc);
    }
    if (v < nv) {
        vec8 a[NR], ga;
#pragma unroll
        for (int r = 0; r < NR; r++) a[r] = ldg8(w[r] + 8 * (u64)v);
        if constexpr (NORM) ga = ldg8(g + 8 * (u64)v);
        if (!waited) {
            pdl_enter();
            waited = true;
        }
        gemv_step<M, NR, NORM>(x, k, v, a, ga, acc);
    }
    if (!waited) pdl_enter();
}

// Sums every accumulator over the block into part[0][·] (read after the call).
template <int M, int NR>
__device__ __forceinline__ void gemv_reduce(float acc[NR][M], float (*part)[NR * M]) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int r = 0; r < NR; r++) {
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float s = warp_sum(acc[r][m]);
            if (lane == 0) part[warp][r * M + m] = s;
        }
    }
    __syncthreads();
    if (threadIdx.x < NR * M) {
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < GEMV_THREADS / 32; w++) s += part[w][threadIdx.x];
        part[0][threadIdx.x] = s;
    }
    __syncthreads();
}

// The RMSNorm factor of input row m from the reduced sums (NORM forms only).
template <int M, int NR>
__device__ __forceinline__ float gemv_norm_scale(const float* sums, int m, u32 k, float eps) {
    return rsqrtf(sums[NR * M + m] / (float)k + eps);
}

template <int M, int R, bool NORM, bool RES>
__device__ __forceinline__ void gemv_segments(const elem* __restrict__ x, u32 k, u64 w0, u64 w1, u64 w2, u64 b0,
                                              u64 b1, u64 b2, u64 y0, u64 y1, u64 y2, u32 n0, u32 n1, u32 n2,
                                              const elem* __restrict__ g, float eps) {
    const u32 nb0 = (n0 + R - 1) / R, nb1 = (n1 + R - 1) / R;
    u32 blk = blockIdx.x;
    u64 w = w0, bias = b0, y = y0;
    u32 n = n0;
    if (blk >= nb0 + nb1) {
        blk -= nb0 + nb1;
        w = w2, bias = b2, y = y2, n = n2;
    } else if (blk >= nb0) {
        blk -= nb0;
        w = w1, bias = b1, y = y1, n = n1;
    }
    const u32 row0 = blk * R;
    const elem* rows[R];
#pragma unroll
    for (int r = 0; r < R; r++) rows[r] = (const elem*)w + (u64)min(row0 + r, n - 1) * k;
    float acc[R + NORM][M];
#pragma unroll
    for (int r = 0; r < R + NORM; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    gemv_accumulate<M, R, NORM>(x, k, rows, g, acc);
    // This thread's output, if any: with RES its old value is fetched now (after the wait:
    // an earlier kernel wrote it), so that the load overlaps the reduction.
    const u32 r = threadIdx.x / M, m = threadIdx.x % M, row = row0 + r;
    const bool writes = threadIdx.x < R * M && row < n;
    elem* out = (elem*)y + (u64)m * n + row;
    float old = 0.0f;
    if constexpr (RES) {
        if (writes) old = e2f(*after_wait(out));
    }
    __shared__ float part[GEMV_THREADS / 32][(R + NORM) * M];
    gemv_reduce<M, R + NORM>(acc, part);
    if (writes) {
        float d = part[0][threadIdx.x];
        if constexpr (NORM) d *= gemv_norm_scale<M, R>(part[0], m, k, eps);
        float v = rnd(d);
        if (bias) v = e2f(f2e(v + e2f(((const elem*)bias)[row])));
        if constexpr (RES) v = rnd(old + v);
        *out = f2e(v);
    }
}

template <int M, int R, bool NORM>
__device__ __forceinline__ void gemv_gated(const elem* __restrict__ x, u32 k, const elem* __restrict__ wg,
                                           const elem* __restrict__ wu, elem* __restrict__ out, u32 n,
                                           const elem* __restrict__ gw, float eps) {
    const u32 row0 = blockIdx.x * R;
    const elem* rows[2 * R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const u64 at = (u64)min(row0 + r, n - 1) * k;
        rows[r] = wg + at;
        rows[R + r] = wu + at;
    }
    float acc[2 * R + NORM][M];
#pragma unroll
    for (int r = 0; r < 2 * R + NORM; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    gemv_accumulate<M, 2 * R, NORM>(x, k, rows, gw, acc);
    __shared__ float part[GEMV_THREADS / 32][(2 * R + NORM) * M];
    gemv_reduce<M, 2 * R + NORM>(acc, part);
    if (threadIdx.x < R * M) {
        const u32 r = threadIdx.x / M, m = threadIdx.x % M, row = row0 + r;
        if (row < n) {
            float gd = part[0][threadIdx.x], ud = part[0][R * M + threadIdx.x];
            if constexpr (NORM) {
                const float s = gemv_norm_scale<M, 2 * R>(part[0], m, k, eps);
                gd *= s;
                ud *= s;
            }
            const float g = rnd(gd), u = rnd(ud);
            const float s = rnd(g / (1.0f + __expf(-g)));
            out[(u64)m * n + row] = f2e(s * u);
        }
    }
}

// Every form of a family takes the same parameters (the host launches them from one place);
// forms without the norm ignore g and eps.
#define GEMV_SEGMENT_KERNEL(NAME, M, NORM, RES)                                                          \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS)                                           \
        NAME##_##M(const elem* __restrict__ x, u32 k, u64 w0, u64 w1, u64 w2, u64 b0, u64 b1, u64 b2,    \
                   u64 y0, u64 y1, u64 y2, u32 n0, u32 n1, u32 n2, const elem* __restrict__ g, float eps) { \
        gemv_segments<M, gemv_rows(M), NORM, RES>(x, k, w0, w1, w2, b0, b1, b2, y0, y1, y2, n0, n1, n2, g, \
                                                  eps);                                                  \
    }

#define GEMV_SILU_KERNEL(NAME, M, NORM)                                                                  \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS)                                           \
        NAME##_##M(const elem* __restrict__ x, u32 k, const elem* __restrict__ wg,                      \
                   const elem* __restrict__ wu, elem* __restrict__ out, u32 n, const elem* __restrict__ g, \
                   float eps) {                                                                          \
        gemv_gated<M, gemv_silu_rows(M), NORM>(x, k, wg, wu, out, n, g, eps);                            \
    }

#define GEMV_INSTANCES(M)                         \
    GEMV_SEGMENT_KERNEL(gemv, M, false, false)    \
    GEMV_SEGMENT_KERNEL(gemv_norm, M, true, false) \
    GEMV_SEGMENT_KERNEL(gemv_res, M, false, true) \
    GEMV_SILU_KERNEL(gemv_silu, M, false)

// The gate/up·silu launch with the norm folded in, for the row counts where gate/up is a GEMV
// (`GEMV_ALWAYS_ROWS` in linear.rs).
#define GEMV_SILU_NORM_INSTANCE(M) GEMV_SILU_KERNEL(gemv_silu_norm, M, true)

GEMV_INSTANCES(1)
GEMV_INSTANCES(2)
GEMV_INSTANCES(3)
GEMV_INSTANCES(4)
GEMV_INSTANCES(5)
GEMV_INSTANCES(6)
GEMV_INSTANCES(7)
GEMV_INSTANCES(8)
GEMV_SILU_NORM_INSTANCE(1)
GEMV_SILU_NORM_INSTANCE(2)
