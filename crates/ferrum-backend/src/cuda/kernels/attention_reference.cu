// The reference attention kernel: shared conventions in attention.cu, whose load_row it uses.
// paged_attention_<D> (reference):
// Grid: (num_tokens, num_heads); one block of ATTN_WARPS warps per query head of one token.
// Token t belongs to sequence s = token_seq[t]; the sequence's queries are its last q_len
// context positions, so query i (0-based in this step) sees keys 0 .. ctx - q_len + i.
// Warp w takes keys w, w + ATTN_WARPS, ...; each lane holds D/32 consecutive dimensions of q,
// of its running output and of every key and value it reads (coalesced 2·D-byte rows).
// Heads narrower than 32 dimensions give one dimension to each of the first D lanes; the others
// add zeros to the dot products and store nothing.
// Each warp keeps an online softmax (running max m, sum l); the block merges the warps at the
// end. Scores and sums are f32; the output is rounded to the element type once.
#define ATTN_WARPS 4

template <int D>
__device__ __forceinline__ void paged_attention_impl(
    elem* __restrict__ out, const elem* __restrict__ q, const elem* __restrict__ kc,
    const elem* __restrict__ vc, const u32* __restrict__ block_tables,
    const u32* __restrict__ seq_lens, const u32* __restrict__ query_start_loc,
    const u32* __restrict__ token_seq, u32 max_blocks, u32 block_size, u32 num_heads,
    u32 num_kv_heads, float scale) {
    pdl_enter();
    q = after_wait(q);
    kc = after_wait(kc);
    vc = after_wait(vc);
    constexpr int E = D >= 32 ? D / 32 : 1;
    const u32 t = blockIdx.x, h = blockIdx.y;
    const u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool active = lane * E < D;
    const u32 s = token_seq[t];
    const u32 q_start = query_start_loc[s];
    const u32 q_len = query_start_loc[s + 1] - q_start;
    const u32 limit = seq_lens[s] - q_len + (t - q_start) + 1;
    const u32 kvh = h / (num_heads / num_kv_heads);
    const u64 width = (u64)num_kv_heads * D;
    const u32* table = block_tables + (u64)s * max_blocks;

    float qr[E];
#pragma unroll
    for (int e = 0; e < E; ++e) qr[e] = 0.0f;
    if (active) load_row<E>(qr, q + ((u64)t * num_heads + h) * D + lane * E);
#pragma unroll
    for (int e = 0; e < E; ++e) qr[e] *= scale;

    float m = -F_INF, l = 0.0f, acc[E];
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = 0.0f;

    for (u32 j = warp; j < limit; j += ATTN_WARPS) {
        const u64 slot = (u64)table[j / block_size] * block_size + j % block_size;
        const u64 off = slot * width + (u64)kvh * D + lane * E;
        float kr[E], vr[E];
#pragma unroll
        for (int e = 0; e < E; ++e) kr[e] = vr[e] = 0.0f;
        if (active) {
            load_row<E>(kr, kc + off);
            load_row<E>(vr, vc + off);
        }
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) d += qr[e] * kr[e];
        d = warp_sum(d);
        const float m_new = fmaxf(m, d);
        const float corr = __expf(m - m_new);
        const float p = __expf(d - m_new);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[e] = acc[e] * corr + p * vr[e];
        m = m_new;
    }

    __shared__ float sm[ATTN_WARPS], sl[ATTN_WARPS];
    __shared__ float sacc[ATTN_WARPS][D];
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    if (active) {
#pragma unroll
        for (int e = 0; e < E; ++e) sacc[warp][lane * E + e] = acc[e];
    }
    __syncthreads();
    float mx = -F_INF;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; ++w) mx = fmaxf(mx, sm[w]);
    float wt[ATTN_WARPS], total = 0.0f;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; ++w) {
        wt[w] = sm[w] == -F_INF ? 0.0f : __expf(sm[w] - mx);
        total += sl[w] * wt[w];
    }
    elem* o = out + ((u64)t * num_heads + h) * D;
    for (u32 d = threadIdx.x; d < D; d += blockDim.x) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < ATTN_WARPS; ++w) v += sacc[w][d] * wt[w];
        o[d] = f2e(v / total);
    }
}

#define ATTENTION_KERNEL(D)                                                                     \
    extern "C" __global__ void __launch_bounds__(ATTN_WARPS * 32) paged_attention_##D(          \
        elem* out, const elem* q, const elem* kc, const elem* vc, const u32* block_tables,       \
        const u32* seq_lens, const u32* query_start_loc, const u32* token_seq, u32 max_blocks,   \
        u32 block_size, u32 num_heads, u32 num_kv_heads, float scale) {                          \
        paged_attention_impl<D>(out, q, kc, vc, block_tables, seq_lens, query_start_loc,         \
                                token_seq, max_blocks, block_size, num_heads, num_kv_heads,      \
                                scale);                                                          \
    }

ATTENTION_KERNEL(16)
ATTENTION_KERNEL(32)
ATTENTION_KERNEL(64)
ATTENTION_KERNEL(96)
ATTENTION_KERNEL(128)
ATTENTION_KERNEL(256)
