// out[t, :] = table[ids[t], :]. Ids at or past `vocab` (never produced by the server, which
// checks them) give a zero row rather than a read out of bounds.
extern "C" __global__ void embedding(elem* __restrict__ out, const elem* __restrict__ table,
                                     const u32* __restrict__ ids, u32 cols, u32 vocab) {
    pdl_enter();
    const u32 t = blockIdx.x;
    const u32 id = ids[t];
    elem* dst = out + (u64)t * cols;
    if (id >= vocab) {
        for (u32 c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = 0;
        return;
    }
    const elem* src = table + (u64)id * cols;
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = src[c];
}

// out[i, :] = x[idx[i], :] (the rows whose logits are wanted).
extern "C" __global__ void gather_rows(elem* __restrict__ out, const elem* __restrict__ x,
                                       const u32* __restrict__ idx, u32 cols) {
    pdl_enter();
    x = after_wait(x);
    const elem* src = x + (u64)idx[blockIdx.x] * cols;
    elem* dst = out + (u64)blockIdx.x * cols;
    for (u32 c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = src[c];
}
