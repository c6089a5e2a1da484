// Stores this step's keys and values at their slots. The layer's cache is
// `[num_slots, num_kv_heads * head_dim]` for K and the same for V: a slot is one token of one
// block (`block * block_size + offset`). Grid: (tokens, ceil(width / blockDim)), one value of
// K and one of V per thread.
extern "C" __global__ void write_kv(elem* __restrict__ kc, elem* __restrict__ vc,
                                    const elem* __restrict__ k, const elem* __restrict__ v,
                                    const u32* __restrict__ slots, u32 width) {
    pdl_enter();
    k = after_wait(k);
    v = after_wait(v);
    const u32 t = blockIdx.x;
    const u64 s = slots[t];
    const u32 c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c < width) {
        kc[s * width + c] = k[(u64)t * width + c];
        vc[s * width + c] = v[(u64)t * width + c];
    }
}

// out[r, c] += bias[c] (rounded as the reference's fused addmm output).
extern "C" __global__ void add_bias(elem* __restrict__ out, const elem* __restrict__ bias, u32 cols) {
    pdl_enter();
    elem* row = out + (u64)blockIdx.x * cols;
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x) row[c] = f2e(e2f(row[c]) + e2f(bias[c]));
}

// out = silu(gate) * up, rounding silu(gate) to the element type first as the reference does.
extern "C" __global__ void silu_mul(elem* __restrict__ out, const elem* __restrict__ gate,
                                    const elem* __restrict__ up, u64 n) {
    pdl_enter();
    gate = after_wait(gate);
    up = after_wait(up);
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        const float g = e2f(gate[i]);
        const float s = rnd(g / (1.0f + __expf(-g)));
        out[i] = f2e(s * e2f(up[i]));
    }
}
