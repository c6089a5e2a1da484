// Rotary embedding of q and k at each token's position, from f32 cos/sin tables of
// `[max_positions, half]`. `interleaved` pairs dimensions (2i, 2i+1) (GGUF Llama), otherwise
// (i, i + half) as Hugging Face's rotate_half. Grid: (tokens, ceil(pairs / blockDim)), one
// pair per thread, so a decode step's few tokens still spread over many blocks.
extern "C" __global__ void rotary(bf16* __restrict__ q, bf16* __restrict__ k,
                                  const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                                  const u32* __restrict__ positions, u32 num_q_heads,
                                  u32 num_k_heads, u32 head_dim, u32 half, u32 interleaved) {
    const u32 t = blockIdx.x;
    const u64 p = positions[t];
    const float* cs = cos_t + p * half;
    const float* sn = sin_t + p * half;
    const u32 pairs = (num_q_heads + num_k_heads) * half;
    const u32 j = blockIdx.y * blockDim.x + threadIdx.x;
    if (j < pairs) {
        const u32 head = j / half, i = j % half;
        bf16* h = head < num_q_heads ? q + ((u64)t * num_q_heads + head) * head_dim
                                     : k + ((u64)t * num_k_heads + (head - num_q_heads)) * head_dim;
        const u32 a = interleaved ? 2 * i : i;
        const u32 b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = bf2f(h[a]), x1 = bf2f(h[b]);
        h[a] = f2bf(x0 * cs[i] - x1 * sn[i]);
        h[b] = f2bf(x0 * sn[i] + x1 * cs[i]);
    }
}
