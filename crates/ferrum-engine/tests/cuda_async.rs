//! Async scheduling on a GPU (skipped, with a note, where no CUDA device is usable;
//! `scripts/gpu/kit.sh` runs it on one): the same requests give the same tokens and finish
//! reasons with `async_scheduling` on and off, where every step is planned while the previous
//! one runs and decode inputs are taken from the device's sampled tokens. Covered: greedy and
//! seeded sampling with length limits (the planned steps are then those of the one-step loop),
//! a KV pool small enough to preempt, stop tokens (a stopped request runs one more row), a
//! request with a penalty among them (the step in flight is resolved first), and every block
//! back in the pool afterwards.

use std::path::Path;

mod common;

use common::{engine, run_jobs};
use ferrum_engine::{Device, EngineConfig};
use ferrum_model::ModelBundle;
use ferrum_types::{FinishReason, SamplingParams};

const VOCAB: u32 = 400;

fn gpu() -> bool {
    match ferrum_backend::cuda::CudaBackend::new(0) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            false
        }
    }
}

type Outcome = (Vec<u32>, Option<FinishReason>);

fn prompt(i: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|j| 3 + (i * 131 + j * 17) % (VOCAB - 3))
        .collect()
}

/// 24 jobs: prompts of 3..~90 tokens (a third share a 40-token prefix), greedy and seeded
/// sampling, 1..60 tokens each, ending on length only.
fn length_jobs() -> Vec<(Vec<u32>, SamplingParams)> {
    let shared = prompt(999, 40);
    (0..24u32)
        .map(|i| {
            let own = prompt(i, 3 + ((i * 29) % 50) as usize);
            let p = if i % 3 == 0 {
                shared.iter().copied().chain(own).collect()
            } else {
                own
            };
            let max_tokens = 1 + ((i * 37) % 60) as usize;
            let mut sp = if i % 4 == 1 {
                SamplingParams {
                    temperature: 0.8,
                    top_p: 0.9,
                    seed: Some(u64::from(i)),
                    max_tokens,
                    ..SamplingParams::default()
                }
            } else {
                SamplingParams::greedy(max_tokens)
            };
            sp.ignore_eos = true;
            (p, sp)
        })
        .collect()
}

fn base() -> EngineConfig {
    EngineConfig {
        max_model_len: 256,
        max_num_seqs: 8,
        device: Device::Cuda,
        kv_cache_memory_bytes: Some(64 << 20),
        ..EngineConfig::default()
    }
}

/// Both loops over `jobs` with `cfg`; asserts equal outcomes and an empty pool afterwards,
/// returns the outcomes and each run's preemption count.
fn compare(
    model: &Path,
    cfg: EngineConfig,
    jobs: &[(Vec<u32>, SamplingParams)],
    what: &str,
) -> (Vec<Outcome>, [u64; 2]) {
    let mut outcomes = Vec::new();
    let mut preemptions = [0; 2];
    for (k, on) in [false, true].into_iter().enumerate() {
        let h = engine(
            model,
            EngineConfig {
                async_scheduling: Some(on),
                ..cfg.clone()
            },
        );
        let idle = h.stats().kv_cache_usage;
        outcomes.push(run_jobs(&h, jobs));
        let stats = h.stats();
        assert_eq!(
            stats.kv_cache_usage, idle,
            "{what}: blocks left (async {on})"
        );
        preemptions[k] = stats.num_preemptions_total;
        h.shutdown();
    }
    let (sync, asy) = (&outcomes[0], &outcomes[1]);
    for (i, (a, b)) in sync.iter().zip(asy).enumerate() {
        assert_eq!(a, b, "{what}: request {i} differs with async scheduling");
    }
    (outcomes.swap_remove(0), preemptions)
}

fn tiny_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ferrum_testkit::preset("tiny_qwen3").expect("preset");
    ferrum_testkit::write_test_model(dir.path(), &spec).expect("write model");
    dir
}

#[test]
fn async_scheduling_gives_the_same_tokens_on_cuda() {
    if !gpu() {
        return;
    }
    let dir = tiny_model();
    let model = dir.path();
    let jobs = length_jobs();

    let (out, _) = compare(model, base(), &jobs, "length limits");
    for (i, ((_, sp), (ids, finish))) in jobs.iter().zip(&out).enumerate() {
        assert_eq!(ids.len(), sp.max_tokens, "request {i}");
        assert_eq!(*finish, Some(FinishReason::Length), "request {i}");
    }

    // 13 blocks of 16 tokens for 8 sequences of up to 152 tokens (10 blocks): requests are
    // preempted. The pool must still hold one sequence of --max-model-len.
    let bundle = ModelBundle::open(model).expect("open model");
    let per_block = bundle.config.kv_bytes_per_token(2) as u64 * 16;
    let tiny_pool = EngineConfig {
        max_model_len: 176,
        kv_cache_memory_bytes: Some(per_block * 13),
        ..base()
    };
    let (_, preemptions) = compare(model, tiny_pool, &jobs, "tiny KV pool");
    assert!(
        preemptions.iter().all(|&p| p > 0),
        "no preemption: {preemptions:?}"
    );

    // Eight greedy requests admitted together that end on stop tokens (an eighth of the
    // vocabulary) or at 40 tokens.
    let stops: Vec<u32> = (3..VOCAB).filter(|t| t % 8 == 0).collect();
    let stop_jobs: Vec<(Vec<u32>, SamplingParams)> = (0..8u32)
        .map(|i| {
            let sp = SamplingParams {
                stop_token_ids: stops.clone(),
                ..SamplingParams::greedy(40)
            };
            (prompt(100 + i, 5 + i as usize), sp)
        })
        .collect();
    let (out, _) = compare(model, base(), &stop_jobs, "stop tokens");
    assert!(
        out.iter().any(|(_, f)| *f == Some(FinishReason::Stop)),
        "no request ended on a stop token"
    );
    for (ids, finish) in &out {
        if *finish == Some(FinishReason::Stop) {
            assert!(
                stops.contains(ids.last().expect("a token")),
                "ends on its stop token"
            );
        }
    }

    // A penalized request among them: the step in flight resolves before each plan.
    let mut mixed = length_jobs();
    mixed[5].1.repetition_penalty = 1.3;
    compare(model, base(), &mixed, "with a penalty");
}
