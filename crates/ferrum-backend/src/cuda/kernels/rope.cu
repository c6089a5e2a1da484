// Rotary embedding of q and k at each token's position, from f32 cos/sin tables of
// `[max_positions, half]`. `interleaved` pairs dimensions (2i, 2i+1) (GGUF Llama), otherwise
// (i, i + half) as Hugging Face's rotate_half. Grid: (tokens, ceil(pairs / blockDim)), one
// pair per thread, so a decode step's few tokens still spread over many blocks.
extern "C" __global__ void rotary(elem* __restrict__ q, elem* __restrict__ k,
                                  const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                                  const u32* __restrict__ positions, u32 num_q_heads,
                                  u32 num_k_heads, u32 head_dim, u32 half, u32 interleaved) {
    pdl_enter();
    const u32 t = blockIdx.x;
    const u64 p = positions[t];
    const float* cs = cos_t + p * half;
    const float* sn = sin_t + p * half;
    const u32 pairs = (num_q_heads + num_k_heads) * half;
    const u32 j = blockIdx.y * blockDim.x + threadIdx.x;
    if (j < pairs) {
        const u32 head = j / half, i = j % half;
        elem* h = head < num_q_heads ? q + ((u64)t * num_q_heads + head) * head_dim
                                     : k + ((u64)t * num_k_heads + (head - num_q_heads)) * head_dim;
        const u32 a = interleaved ? 2 * i : i;
        const u32 b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = e2f(h[a]), x1 = e2f(h[b]);
        h[a] = f2e(x0 * cs[i] - x1 * sn[i]);
        h[b] = f2e(x0 * sn[i] + x1 * cs[i]);
    }
}

// The step's prologue to attention in one pass, per head: the optional per-head RMSNorm (as
// head_rms_norm), the rotary of `rotary` with rotate_half pairs over the whole head, then the
// keys and values into the cache (as write_kv). q is rotated in place; k is read only.
// Grid: (tokens, ceil((num_q_heads + num_kv_heads) / 4)), 4 warps, one head per warp. Lane l
// holds dimensions l, l + 32, ... (head_rms_norm's layout, so the sum of squares adds in the
// same order); dimension i's rotary partner i + D/2 is then in the same lane. D ≥ 64.
template <int D>
__device__ __forceinline__ void qk_rope_kv_impl(elem* __restrict__ q, const elem* __restrict__ k,
                                                const elem* __restrict__ v, elem* __restrict__ kc,
                                                elem* __restrict__ vc, const elem* __restrict__ qn,
                                                const elem* __restrict__ kn, const float* __restrict__ cos_t,
                                                const float* __restrict__ sin_t,
                                                const u32* __restrict__ positions,
                                                const u32* __restrict__ slots, u32 nq, u32 nkv, float eps) {
    constexpr int E = D / 32, H = E / 2;
    const u32 t = blockIdx.x;
    const u32 head = blockIdx.y * 4 + (threadIdx.x >> 5);
    const u32 lane = threadIdx.x & 31;
    // Warp 0 of every block has a head, so every block waits below.
    if (head >= nq + nkv) return;
    const bool is_q = head < nq;
    const u32 kh = head - nq;
    // Before the wait: the norm weight, the token's cos/sin row and its slot are weights and
    // step metadata (written before the step's first kernel), so their loads overlap the
    // previous kernel instead of following the q/k/v load.
    const elem* nw = is_q ? qn : kn;
    float w[E], cs[H], sn[H];
#pragma unroll
    for (int e = 0; e < E; e++) w[e] = nw ? e2f(nw[lane + 32 * e]) : 1.0f;
    const u64 p = positions[t];
#pragma unroll
    for (int e = 0; e < H; e++) {
        cs[e] = cos_t[p * (D / 2) + lane + 32 * e];
        sn[e] = sin_t[p * (D / 2) + lane + 32 * e];
    }
    const u64 at = is_q ? 0 : slots[t] * ((u64)nkv * D) + (u64)kh * D;

    pdl_enter();
    q = after_wait(q);
    k = after_wait(k);
    v = after_wait(v);
    const elem* src = is_q ? q + ((u64)t * nq + head) * D : k + ((u64)t * nkv + kh) * D;
    float x[E];
#pragma unroll
    for (int e = 0; e < E; e++) x[e] = e2f(src[lane + 32 * e]);
    if (nw) {
        float ss = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) ss += x[e] * x[e];
        const float s = rsqrtf(warp_sum(ss) / (float)D + eps);
#pragma unroll
        for (int e = 0; e < E; e++) x[e] = rnd(rnd(x[e] * s) * w[e]);
    }
#pragma unroll
    for (int e = 0; e < H; e++) {
        const float x0 = x[e], x1 = x[e + H];
        x[e] = x0 * cs[e] - x1 * sn[e];
        x[e + H] = x0 * sn[e] + x1 * cs[e];
    }
    if (is_q) {
        elem* dst = q + ((u64)t * nq + head) * D;
#pragma unroll
        for (int e = 0; e < E; e++) dst[lane + 32 * e] = f2e(x[e]);
        return;
    }
    const elem* vs = v + ((u64)t * nkv + kh) * D;
#pragma unroll
    for (int e = 0; e < E; e++) {
        kc[at + lane + 32 * e] = f2e(x[e]);
        vc[at + lane + 32 * e] = vs[lane + 32 * e];
    }
}

#define QK_ROPE_KV_KERNEL(D)                                                                       \
    extern "C" __global__ void __launch_bounds__(128) qk_rope_kv_##D(                              \
        elem* q, const elem* k, const elem* v, elem* kc, elem* vc, const elem* qn, const elem* kn, \
        const float* cos_t, const float* sin_t, const u32* positions, const u32* slots, u32 nq,    \
        u32 nkv, float eps) {                                                                      \
        qk_rope_kv_impl<D>(q, k, v, kc, vc, qn, kn, cos_t, sin_t, positions, slots, nq, nkv, eps); \
    }

QK_ROPE_KV_KERNEL(64)
QK_ROPE_KV_KERNEL(128)
QK_ROPE_KV_KERNEL(256)
