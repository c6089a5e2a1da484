//! Random-weight models in Hugging Face layout, for tests that need a real checkpoint on disk.
//!
//! `write_test_model` writes `config.json`, `generation_config.json`, `model.safetensors` (or
//! shards plus `model.safetensors.index.json`), `tokenizer.json` and `tokenizer_config.json`
//! for a Llama, Qwen2 or Qwen3 shape described by a [`TestModelSpec`].
//!
//! Invariants:
//! - The same spec writes byte-identical files on any machine: weights come from our own PRNG
//!   (splitmix64, seeded per tensor from the spec's seed and the tensor name), and only IEEE
//!   operations that are correctly rounded (add, mul, div, sqrt, casts) touch the values.
//! - A tensor's values depend only on (seed, name, shape, init), never on sharding or dtype
//!   order, so `--shards 3` holds the same numbers as one file.
//! - Weights are scaled so activations stay O(1) through many layers and the logits have a
//!   spread of a few units: greedy decoding is not degenerate and small errors show.
//! - JSON is written from structs and id-ordered maps, never from `serde_json::Value`, so key
//!   order does not depend on serde_json's `preserve_order` feature.
//!
//! The logits of the tiny presets, computed by an independent numpy implementation
//! (`scripts/reference/decoder_numpy.py`), live in `fixtures/reference_logits.json`.

mod config_json;
mod error;
mod hash;
mod presets;
mod rng;
mod safetensors;
mod spec;
mod tokenizer;
mod weights;
mod writer;

pub use error::{Result, TestkitError};
pub use hash::{fnv1a64, fnv1a64_file};
pub use presets::{
    llama31_8b, preset, qwen3_4b, tiny_llama, tiny_llama2, tiny_qwen2, tiny_qwen3, PRESET_NAMES,
};
pub use spec::{Arch, DType, Llama3RopeScaling, TestModelSpec, VocabSource, QWEN_VOCAB_SIZE};
pub use writer::write_test_model;
