//! GGUF block formats on the CPU.
