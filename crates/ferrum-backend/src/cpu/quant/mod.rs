//! GGUF block formats on the CPU: decoding rows, quantizing activations, and the quantized
//! matrix multiplication that every linear layer of a GGUF model goes through.
//!
//! Invariants:
//! - A [`QuantMatrix`] borrows GGUF rows as stored; a [`PreparedMatrix`] owns a copy whose
//!   bytes are only moved (Q4_0/Q4_1/Q8_0 into 16-row groups), so it decodes to the same values.
//! - Activations are quantized to 8 bits exactly as llama.cpp's x86 backend does, and every
//!   block's dot product is an exact integer before f32 scaling, so results match llama.cpp's
//!   to rounding (see `kernels` for the accumulation orders).
//! - SIMD is chosen once at run time (AVX2, AVX2 + VNNI, AVX-512 VNNI); a scalar path always
//!   exists and every vector kernel is tested to equal it bit for bit.
//!
//! Use: [`PreparedMatrix::new`] once per weight at load time, then [`quant_matmul_prepared`]
//! (several times faster than [`quant_matmul`] on GGUF rows for Q4_0/Q4_1/Q8_0; other types
//! keep their rows and the same kernels).
//!
//! Files: `layout` (block formats), `dequant`/`dequant_k` (decoding), `activation` (8-bit
//! activation quantizers), `packed` (interleaved layout), `kernels` (dot products and
//! dispatch), `matmul` (entry points, threading, tiling).

mod activation;
mod dequant;
mod dequant_k;
mod kernels;
mod layout;
mod matmul;
mod packed;

pub use activation::{quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k, ActFormat};
pub use dequant::dequantize_row;
pub use matmul::{quant_matmul, quant_matmul_prepared, QuantMatrix};
pub(crate) use matmul::{quant_matmul_prepared_on, QuantizedActs};
pub use packed::PreparedMatrix;

/// Name of the kernel table in use (`scalar`, `avx2`, `avx2-avxvnni`, `avx2-vnni512`), for logs.
pub fn kernel_variant() -> &'static str {
    kernels::best().name
}

/// The 8-bit activation format that `dtype` weights are multiplied against, or `None` for
/// dense types.
pub fn activation_format(dtype: ferrum_types::DType) -> Option<ActFormat> {
    kernels::act_format(dtype)
}
