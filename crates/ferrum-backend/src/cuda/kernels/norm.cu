// RMSNorm as Hugging Face computes it in bf16: the mean of squares in f32, the normalized
// value rounded to bf16, then multiplied by the bf16 weight. One block per row.
extern "C" __global__ void rms_norm(bf16* __restrict__ out, const bf16* __restrict__ x,
                                    const bf16* __restrict__ w, u32 cols, float eps) {
    const bf16* row = x + (u64)blockIdx.x * cols;
    bf16* dst = out + (u64)blockIdx.x * cols;
    float ss = 0.0f;
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = bf2f(row[c]);
        ss += v * v;
    }
    const float s = rsqrtf(block_sum(ss) / (float)cols + eps);
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x)
        dst[c] = f2bf(rbf(bf2f(row[c]) * s) * bf2f(w[c]));
}

// residual += x (rounded to bf16, as the reference's bf16 addition), then out = rmsnorm(residual).
// Each thread rereads only the residual elements it wrote itself, so one pass needs no barrier.
extern "C" __global__ void add_rms_norm(bf16* __restrict__ out, bf16* __restrict__ residual,
                                        const bf16* __restrict__ x, const bf16* __restrict__ w,
                                        u32 cols, float eps) {
    bf16* res = residual + (u64)blockIdx.x * cols;
    const bf16* row = x + (u64)blockIdx.x * cols;
    bf16* dst = out + (u64)blockIdx.x * cols;
    float ss = 0.0f;
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x) {
        const bf16 r = f2bf(bf2f(res[c]) + bf2f(row[c]));
        res[c] = r;
        const float v = bf2f(r);
        ss += v * v;
    }
    const float s = rsqrtf(block_sum(ss) / (float)cols + eps);
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x)
        dst[c] = f2bf(rbf(bf2f(res[c]) * s) * bf2f(w[c]));
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
