//! `write_test_model`: the one entry point that puts a whole checkpoint directory on disk.

use std::path::Path;

use crate::config_json::{config_json, generation_config_json};
use crate::error::{io_err, Result, TestkitError};
use crate::safetensors::write_weights;
use crate::spec::TestModelSpec;
use crate::{tokenizer, weights};

/// Writes `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`
/// and the safetensors weights of `spec` into `dir` (created if missing; files overwritten).
pub fn write_test_model(dir: &Path, spec: &TestModelSpec) -> Result<()> {
    spec.validate()?;
    let tok = tokenizer::build(spec)?;
    if tok.len > spec.vocab_size {
        return Err(TestkitError::InvalidSpec(format!(
            "vocab_size ({}) is smaller than the tokenizer ({} tokens)",
            spec.vocab_size, tok.len
        )));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(path))
    };
    write("config.json", &config_json(spec, &tok.ids)?)?;
    write(
        "generation_config.json",
        &generation_config_json(spec, &tok.ids)?,
    )?;
    write("tokenizer.json", &tok.tokenizer_json)?;
    write("tokenizer_config.json", &tok.tokenizer_config_json)?;
    write_weights(
        dir,
        &weights::plan(spec, tok.len),
        spec.dtype,
        spec.seed,
        spec.shards,
    )
}
