//! CPU backend.

pub mod quant;
