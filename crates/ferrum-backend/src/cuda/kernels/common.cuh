// Shared helpers for every Ferrum kernel. The sources need no CUDA header (NVRTC compiles them
// with no include path): 16-bit floats travel as their raw bits and are converted here.
//
// `elem` is the element type of weights, activations and the KV cache. The sources are
// compiled once per type, chosen by FERRUM_ELEM: 0 = bf16 (the default), 1 = f16, 2 = f32.
// Arithmetic is f32 in every module. `rnd` rounds through `elem` where the reference (PyTorch
// in that dtype) stores an intermediate tensor; in the f32 module it is the identity.
typedef unsigned short bf16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef FERRUM_ELEM
#define FERRUM_ELEM 0
#endif

#define F_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf2f(bf16 x) { return __uint_as_float(((u32)x) << 16); }

// Round to nearest even, as PyTorch does (one instruction on sm_80+; a NaN stays a NaN).
__device__ __forceinline__ bf16 f2bf(float f) {
    bf16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float h2f(unsigned short x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
    return f;
}

__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

#if FERRUM_ELEM == 2
typedef float elem;
__device__ __forceinline__ float e2f(elem x) { return x; }
__device__ __forceinline__ elem f2e(float f) { return f; }
#elif FERRUM_ELEM == 1
typedef unsigned short elem;
__device__ __forceinline__ float e2f(elem x) { return h2f(x); }
__device__ __forceinline__ elem f2e(float f) { return f2h(f); }
#else
typedef unsigned short elem;
__device__ __forceinline__ float e2f(elem x) { return bf2f(x); }
__device__ __forceinline__ elem f2e(float f) { return f2bf(f); }
#endif

__device__ __forceinline__ float rnd(float f) { return e2f(f2e(f)); }

#if FERRUM_ELEM != 2
// The two 16-bit values of one 32-bit word (the lower address in the low half).
__device__ __forceinline__ void unpack2(u32 w, float& lo, float& hi) {
#if FERRUM_ELEM == 0
    lo = __uint_as_float(w << 16);
    hi = __uint_as_float(w & 0xffff0000u);
#else
    lo = h2f((unsigned short)(w & 0xffffu));
    hi = h2f((unsigned short)(w >> 16));
#endif
}

__device__ __forceinline__ u32 pack2(float lo, float hi) {
    return (u32)f2e(lo) | ((u32)f2e(hi) << 16);
}
#endif

// Programmatic dependent launch (sm_90+, see launch.rs): `pdl_wait` blocks until the kernel
// before this one on the stream has finished and its writes are visible; every kernel calls it
// before touching any buffer but weights. `pdl_trigger` lets the next kernel be scheduled once
// every block of this one has called it. Both are no-ops without the launch attribute and on
// older cards.
__device__ __forceinline__ void pdl_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Both, at the top of a kernel that reads nothing before its inputs.
__device__ __forceinline__ void pdl_enter() {
    pdl_wait();
    pdl_trigger();
}

// Starts moving the line of `p` into this SM's L1 (no register, no wait): for weights a kernel
// reads only after `pdl_wait`, so that their trip from memory overlaps the previous kernel.
__device__ __forceinline__ void prefetch_l1(const void* p) {
    asm volatile("prefetch.L1 [%0];" ::"l"(p));
}

// `p`, as a value the compiler cannot see through. Loads through a `const __restrict__`
// pointer may be taken as invariant and moved above `pdl_wait` (a memory clobber does not hold
// them back); a pointer that comes out of a volatile asm after the wait cannot be. Every
// kernel passes the read-only activations it reads (outputs of earlier kernels) through this.
template <typename T>
__device__ __forceinline__ T* after_wait(T* p) {
    asm volatile("" : "+l"(p));
    return p;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    const int nw = blockDim.x >> 5;
    float t = lane < nw ? partial[lane] : 0.0f;
    return warp_sum(t);
}

// Eight consecutive elements as 16-byte words: one for 16-bit types, two for f32. Every
// pointer given to the functions below is aligned to 8 elements.
#define VEC_WORDS ((int)(sizeof(elem) / 2))
struct vec8 {
    uint4 w[VEC_WORDS];
};

__device__ __forceinline__ vec8 ld8(const elem* p) {
    vec8 v;
#pragma unroll
    for (int i = 0; i < VEC_WORDS; i++) v.w[i] = reinterpret_cast<const uint4*>(p)[i];
    return v;
}

// Weights, streamed once a step: through the read-only path, not kept in L1, and with a
// 256-byte L2 prefetch (sm_80+), so that DRAM serves a warp's neighbouring lines in one
// request (single-stream decode 0.2–1.1% faster on an H100). Not volatile: weights are never
// written, so these loads may be moved like `__ldg`, also above `pdl_wait` (see launch.rs).
__device__ __forceinline__ vec8 ldg8(const elem* p) {
    vec8 v;
#pragma unroll
    for (int i = 0; i < VEC_WORDS; i++) {
        uint4 u;
        asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
            : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w)
            : "l"(reinterpret_cast<const uint4*>(p) + i));
        v.w[i] = u;
    }
    return v;
}

// Through L2 only (activations that an overlapping earlier kernel may have just written: see
// launch.rs).
__device__ __forceinline__ vec8 ldcg8(const elem* p) {
    vec8 v;
#pragma unroll
    for (int i = 0; i < VEC_WORDS; i++) {
        uint4 u;
        asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w)
                     : "l"(reinterpret_cast<const uint4*>(p) + i));
        v.w[i] = u;
    }
    return v;
}

__device__ __forceinline__ void unpack8(const vec8& v, float f[8]) {
#if FERRUM_ELEM == 2
#pragma unroll
    for (int i = 0; i < 2; i++) {
        f[4 * i] = __uint_as_float(v.w[i].x);
        f[4 * i + 1] = __uint_as_float(v.w[i].y);
        f[4 * i + 2] = __uint_as_float(v.w[i].z);
        f[4 * i + 3] = __uint_as_float(v.w[i].w);
    }
#else
    unpack2(v.w[0].x, f[0], f[1]);
    unpack2(v.w[0].y, f[2], f[3]);
    unpack2(v.w[0].z, f[4], f[5]);
    unpack2(v.w[0].w, f[6], f[7]);
#endif
}

__device__ __forceinline__ vec8 pack8(const float f[8]) {
    vec8 v;
#if FERRUM_ELEM == 2
#pragma unroll
    for (int i = 0; i < 2; i++)
        v.w[i] = make_uint4(__float_as_uint(f[4 * i]), __float_as_uint(f[4 * i + 1]),
                            __float_as_uint(f[4 * i + 2]), __float_as_uint(f[4 * i + 3]));
#else
    v.w[0] = make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
#endif
    return v;
}

__device__ __forceinline__ void load8(const elem* p, float f[8]) { unpack8(ld8(p), f); }

__device__ __forceinline__ void store8(elem* p, const float f[8]) {
    const vec8 v = pack8(f);
#pragma unroll
    for (int i = 0; i < VEC_WORDS; i++) reinterpret_cast<uint4*>(p)[i] = v.w[i];
}

// One lane's E consecutive elements of a row, as f32 (vector loads where E allows).
template <int E>
__device__ __forceinline__ void load_row(float* dst, const elem* src) {
    if constexpr (E % 8 == 0) {
#pragma unroll
        for (int i = 0; i < E / 8; ++i) load8(src + 8 * i, dst + 8 * i);
    } else if constexpr (E == 4) {
#if FERRUM_ELEM == 2
        const float4 u = *reinterpret_cast<const float4*>(src);
        dst[0] = u.x, dst[1] = u.y, dst[2] = u.z, dst[3] = u.w;
#else
        const uint2 u = *reinterpret_cast<const uint2*>(src);
        unpack2(u.x, dst[0], dst[1]);
        unpack2(u.y, dst[2], dst[3]);
#endif
    } else if constexpr (E == 2) {
#if FERRUM_ELEM == 2
        const float2 u = *reinterpret_cast<const float2*>(src);
        dst[0] = u.x, dst[1] = u.y;
#else
        unpack2(*reinterpret_cast<const u32*>(src), dst[0], dst[1]);
#endif
    } else {
#pragma unroll
        for (int i = 0; i < E; ++i) dst[i] = e2f(src[i]);
    }
}
