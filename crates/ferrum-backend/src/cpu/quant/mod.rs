//! GGUF block formats on the CPU: decoding rows, quantizing activations, and the quantized
//! matrix multiplication that every linear layer of a GGUF model goes through.
//!
//! Invariants:
//! - Weights stay in their stored block layout (borrowed, never repacked or copied).
//! - Activations are quantized to 8 bits exactly as llama.cpp's x86 backend does, and the dot
//!   products accumulate in its order, so our logits match its to rounding (see `kernels`).
//! - SIMD is chosen at run time (AVX2, AVX2 + VNNI); a scalar path always exists and is the
//!   reference every vector kernel is tested against.
//!
//! Layout: `layout` (block formats), `dequant`/`dequant_k` (decoding), `activation` (8-bit
//! activation quantizers), `kernels` (per-format dot products and dispatch), `matmul` (entry
//! point, threading and tiling).

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
