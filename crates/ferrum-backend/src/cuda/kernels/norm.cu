// RMSNorm as Hugging Face computes it in bf16: the mean of squares in f32, the normalized
// value rounded to bf16, then multiplied by the bf16 weight. One block per row; rows whose
// width is a multiple of 8 move as 16-byte vectors (a decode step has a single row, so its
// time is the latency of a few such passes).

// dst = rbf(src · s) · w for one row; each thread touches the same elements as in the first
// pass, so rereading a residual it wrote needs no barrier.
__device__ __forceinline__ void norm_scale_store(bf16* __restrict__ dst, const bf16* src,
                                                 const bf16* __restrict__ w, u32 cols, float s) {
    if ((cols & 7) == 0) {
        for (u32 c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
            float v[8], g[8];
            unpack8(*reinterpret_cast<const uint4*>(src + c), v);
            unpack8(*reinterpret_cast<const uint4*>(w + c), g);
#pragma unroll
            for (int i = 0; i < 8; i++) v[i] = rbf(v[i] * s) * g[i];
            *reinterpret_cast<uint4*>(dst + c) = pack8(v);
        }
    } else {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x)
            dst[c] = f2bf(rbf(bf2f(src[c]) * s) * bf2f(w[c]));
    }
}

extern "C" __global__ void rms_norm(bf16* __restrict__ out, const bf16* __restrict__ x,
                                    const bf16* __restrict__ w, u32 cols, float eps) {
    const bf16* row = x + (u64)blockIdx.x * cols;
    bf16* dst = out + (u64)blockIdx.x * cols;
    float ss = 0.0f;
    if ((cols & 7) == 0) {
        for (u32 c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
            float v[8];
            unpack8(*reinterpret_cast<const uint4*>(row + c), v);
#pragma unroll
            for (int i = 0; i < 8; i++) ss += v[i] * v[i];
        }
    } else {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x) {
            const float v = bf2f(row[c]);
            ss += v * v;
        }
    }
    const float s = rsqrtf(block_sum(ss) / (float)cols + eps);
    norm_scale_store(dst, row, w, cols, s);
}

// residual += x (rounded to bf16, as the reference's bf16 addition), then out = rmsnorm(residual).
extern "C" __global__ void add_rms_norm(bf16* __restrict__ out, bf16* __restrict__ residual,
                                        const bf16* __restrict__ x, const bf16* __restrict__ w,
                                        u32 cols, float eps) {
    bf16* res = residual + (u64)blockIdx.x * cols;
    const bf16* row = x + (u64)blockIdx.x * cols;
    bf16* dst = out + (u64)blockIdx.x * cols;
    float ss = 0.0f;
    if ((cols & 7) == 0) {
        for (u32 c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
            float r[8], a[8];
            unpack8(*reinterpret_cast<const uint4*>(res + c), r);
            unpack8(*reinterpret_cast<const uint4*>(row + c), a);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                r[i] = rbf(r[i] + a[i]);
                ss += r[i] * r[i];
            }
            *reinterpret_cast<uint4*>(res + c) = pack8(r);
        }
    } else {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x) {
            const bf16 r = f2bf(bf2f(res[c]) + bf2f(row[c]));
            res[c] = r;
            const float v = bf2f(r);
            ss += v * v;
        }
    }
    const float s = rsqrtf(block_sum(ss) / (float)cols + eps);
    norm_scale_store(dst, res, w, cols, s);
}

// RMSNorm of every head_dim slice in place (Qwen3's q/k norm): one warp per head.
extern "C" __global__ void head_rms_norm(bf16* __restrict__ x, const bf16* __restrict__ w,
                                         u32 num_heads_total, u32 head_dim, float eps) {
    const u32 warps = blockDim.x >> 5;
    const u32 head = blockIdx.x * warps + (threadIdx.x >> 5);
    const u32 lane = threadIdx.x & 31;
    if (head >= num_heads_total) return;
    bf16* h = x + (u64)head * head_dim;
    float ss = 0.0f;
    for (u32 c = lane; c < head_dim; c += 32) {
        const float v = bf2f(h[c]);
        ss += v * v;
    }
    const float s = rsqrtf(warp_sum(ss) / (float)head_dim + eps);
    for (u32 c = lane; c < head_dim; c += 32) h[c] = f2bf(rbf(bf2f(h[c]) * s) * bf2f(w[c]));
}
