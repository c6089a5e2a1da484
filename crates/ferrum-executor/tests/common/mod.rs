//! Helpers shared by the integration tests: locating the default model and running greedy
//! generation through the model runner.

#![allow(dead_code)]

use std::path::PathBuf;

use ferrum_backend::cpu::{CpuBackend, CpuNumerics};
use ferrum_backend::KvCacheSpec;
use ferrum_executor::{sample, ModelRunner, Rng, SeqInput, SequenceView};
use ferrum_model::{DecoderModel, ModelBundle};
use ferrum_types::SamplingParams;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn default_model() -> PathBuf {
    let p = workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-default-model",
        p.display()
    );
    p
}

pub fn shared_golden(name: &str) -> PathBuf {
    let p = workspace_root().join("../shared/golden").join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

pub const BLOCK_SIZE: usize = 16;

/// A runner with room for `max_tokens` tokens of context, one sequence.
pub fn runner(bundle: &ModelBundle, max_tokens: usize, threads: usize) -> ModelRunner<CpuBackend> {
    runner_with(bundle, max_tokens, threads, CpuNumerics::Fast)
}

/// [`runner`] with the given summation orders.
pub fn runner_with(
    bundle: &ModelBundle,
    max_tokens: usize,
    threads: usize,
    numerics: CpuNumerics,
) -> ModelRunner<CpuBackend> {
    let backend = CpuBackend::with_numerics(threads, numerics).expect("thread pool");
    let cfg = bundle.config.clone();
    let model = DecoderModel::load(&backend, cfg.clone(), bundle.weights.as_ref()).expect("load");
    let spec = KvCacheSpec {
        num_layers: cfg.num_layers,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        block_size: BLOCK_SIZE,
        num_blocks: max_tokens.div_ceil(BLOCK_SIZE) + 1,
    };
    ModelRunner::new(backend, model, spec, max_tokens, 8).expect("runner")
}

/// One greedy step's result: the chosen token and its log-probability.
pub struct Step {
    pub token: u32,
    pub logprob: f32,
}

/// Greedy generation with a shuffled block table (so paging is exercised), stopping at EOS.
pub fn greedy(
    runner: &mut ModelRunner<CpuBackend>,
    prompt: &[u32],
    max_new: usize,
    eos: &[u32],
) -> Vec<Step> {
    let blocks = (prompt.len() + max_new).div_ceil(BLOCK_SIZE);
    let table: Vec<u32> = (0..blocks as u32).rev().collect();
    let params = SamplingParams {
        logprobs: Some(1),
        ..SamplingParams::greedy(max_new)
    };
    let mut out: Vec<u32> = Vec::new();
    let mut steps = Vec::new();
    let mut logits = runner
        .execute(&[SeqInput {
            tokens: prompt,
            num_computed_tokens: 0,
            block_table: &table,
            want_logits: true,
        }])
        .expect("prefill");
    let mut rng = Rng::new(0);
    loop {
        let view = SequenceView {
            prompt,
            output: &out,
            eos_token_ids: eos,
        };
        let s = sample(&mut logits, &params, &view, &mut rng);
        let logprob = s.logprobs.map_or(0.0, |l| l.chosen);
        out.push(s.token);
        steps.push(Step {
            token: s.token,
            logprob,
        });
        if eos.contains(&s.token) || out.len() >= max_new {
            return steps;
        }
        logits = runner
            .execute(&[SeqInput {
                tokens: &[s.token],
                num_computed_tokens: prompt.len() + out.len() - 1,
                block_table: &table,
                want_logits: true,
            }])
            .expect("decode");
    }
}
