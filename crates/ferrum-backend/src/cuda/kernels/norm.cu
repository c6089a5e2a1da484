// RMSNorm as Hugging Face computes it in the model's dtype: the mean of squares in f32, the
// normalized value rounded to that dtype, then multiplied by the weight. One block per row; rows
// whose width is a multiple of 8 move as 8-element vectors (a decode step has a single row, so its
// time is the latency of a few such passes).

// The weight is read only in the second pass, after the row's sum: its lines are requested
// before the wait on the previous kernel (one per 64 bytes: 32 bf16 or 16 f32 elements).
__device__ __forceinline__ void prefetch_weight(const elem* __restrict__ w, u32 cols) {
    constexpr u32 LINE = 64 / sizeof(elem);
    for (u32 c = threadIdx.x * LINE; c < cols; c += blockDim.x * LINE) prefetch_l1(w + c);
}

// dst = rnd(src · s) · w for one row; each thread touches the same elements as in the first
// pass, so rereading a residual it wrote needs no barrier.
__device__ __forceinline__ void norm_scale_store(elem* __restrict__ dst, const elem* src,
                                                 const elem* __restrict__ w, u32 cols, float s) {
    if ((cols & 7) == 0) {
        for (u32 c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
            float v[8], g[8];
            load8(src + c, v);
            load8(w + c, g);
#pragma unroll
            for (int i = 0; i < 8; i++) v[i] = rnd(v[i] * s) * g[i];
            store8(dst + c, v);
        }
    } else {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x)
            dst[c] = f2e(rnd(e2f(src[c]) * s) * e2f(w[c]));
    }
}

extern "C" __global__ void rms_norm(elem* __restrict__ out, const elem* __restrict__ x,
                                    const elem* __restrict__ w, u32 cols, float eps) {
    prefetch_weight(w, cols);
    pdl_enter();
    x = after_wait(x);
    const elem* row = x + (u64)blockIdx.x * cols;
    elem* dst = out + (u64)blockIdx.x * cols;
    float ss = 0.0f;
    if ((cols & 7) == 0) {
        for (u32 c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
            float v[8];
            load8(row + c, v);
#pragma unroll
            for (int i = 0; i < 8; i++) ss += v[i] * v[i];
        }
    } else {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x) {
            const float v = e2f(row[c]);
            ss += v * v;
        }
    }
    const float s = rsqrtf(block_sum(ss) / (float)cols + eps);
    norm_scale_store(dst, row, w, cols, s);
}

// residual += x (rounded, as the reference adds in the model's dtype), then out = rmsnorm(residual).
extern "C" __global__ void add_rms_norm(elem* __restrict__ out, elem* __restrict__ residual,
                                        const elem* __restrict__ x, const elem* __restrict__ w,
                                        u32 cols, float eps) {
    prefetch_weight(w, cols);
    pdl_enter();
    x = after_wait(x);
    elem* res = residual + (u64)blockIdx.x * cols;
    const elem* row = x + (u64)blockIdx.x * cols;
    elem* dst = out + (u64)blockIdx.x * cols;
    float ss = 0.0f;
    if ((cols & 7) == 0) {
        for (u32 c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
            float r[8], a[8];
            load8(res + c, r);
            load8(row + c, a);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                r[i] = rnd(r[i] + a[i]);
                ss += r[i] * r[i];
            }
            store8(res + c, r);
        }
    } else {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x) {
            const elem r = f2e(e2f(res[c]) + e2f(row[c]));
            res[c] = r;
            const float v = e2f(r);
            ss += v * v;
        }
    }
    const float s = rsqrtf(block_sum(ss) / (float)cols + eps);
    norm_scale_store(dst, res, w, cols, s);
}

// RMSNorm of every head_dim slice in place (Qwen3's q/k norm): one warp per head.
extern "C" __global__ void head_rms_norm(elem* __restrict__ x, const elem* __restrict__ w,
                                         u32 num_heads_total, u32 head_dim, float eps) {
    pdl_enter();
    const u32 warps = blockDim.x >> 5;
    const u32 head = blockIdx.x * warps + (threadIdx.x >> 5);
    const u32 lane = threadIdx.x & 31;
    if (head >= num_heads_total) return;
    elem* h = x + (u64)head * head_dim;
    float ss = 0.0f;
    for (u32 c = lane; c < head_dim; c += 32) {
        const float v = e2f(h[c]);
        ss += v * v;
    }
    const float s = rsqrtf(warp_sum(ss) / (float)head_dim + eps);
    for (u32 c = lane; c < head_dim; c += 32) h[c] = f2e(rnd(e2f(h[c]) * s) * e2f(w[c]));
}
