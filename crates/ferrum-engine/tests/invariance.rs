//! Greedy outputs do not depend on what else the engine is doing: alone or among 32
//! mixed-length requests, with prefix caching on or off, with chunked prefill (16-token budget)
//! or whole prefill, and with a KV pool so small that requests are preempted and recomputed.
//! Also: aborting half of 64 running requests returns every block to the pool.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{engine, run_jobs};
use ferrum_engine::{EngineConfig, EngineHandle};
use ferrum_model::ModelBundle;
use ferrum_types::{EngineRequest, FinishReason, SamplingParams};

fn default_model() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run scripts/fetch-default-model first");
    p
}

/// Runs every prompt concurrently and returns each one's generated ids.
fn run_all(h: &EngineHandle, prompts: &[Vec<u32>], max_tokens: usize) -> Vec<Vec<u32>> {
    let jobs: Vec<(Vec<u32>, SamplingParams)> = prompts
        .iter()
        .map(|p| {
            let mut sp = SamplingParams::greedy(max_tokens);
            sp.ignore_eos = true;
            (p.clone(), sp)
        })
        .collect();
    run_jobs(h, &jobs)
        .into_iter()
        .map(|(ids, _)| {
            assert_eq!(ids.len(), max_tokens);
            ids
        })
        .collect()
}

/// 32 prompts of mixed lengths (3..~180 tokens), several sharing a long prefix.
fn prompts(vocab: u32) -> Vec<Vec<u32>> {
    let shared: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % vocab).collect();
    (0..32u32)
        .map(|i| {
            let len = 3 + ((i * 53) % 140) as usize;
            let own = (0..len as u32).map(|j| (i * 131 + j * 17 + 5) % vocab);
            if i % 3 == 0 {
                shared.iter().copied().chain(own).collect()
            } else {
                own.collect()
            }
        })
        .collect()
}

fn base() -> EngineConfig {
    EngineConfig {
        max_model_len: 512,
        threads: 2,
        kv_cache_memory_bytes: Some(256 << 20),
        ..EngineConfig::default()
    }
}

fn check_invariance(model: &std::path::Path, vocab: u32, max_tokens: usize) {
    let prompts = prompts(vocab);
    let alone: Vec<Vec<u32>> = {
        let h = engine(model, base());
        prompts
            .iter()
            .map(|p| run_all(&h, std::slice::from_ref(p), max_tokens).remove(0))
            .collect()
    };
    let variants: Vec<(&str, EngineConfig)> = vec![
        ("batched", base()),
        (
            "no prefix caching",
            EngineConfig {
                enable_prefix_caching: false,
                ..base()
            },
        ),
        (
            "chunked prefill, budget 16",
            EngineConfig {
                max_num_batched_tokens: 16,
                max_num_seqs: 16,
                ..base()
            },
        ),
        (
            "tiny KV pool",
            EngineConfig {
                // 40 blocks of 16 tokens: the batch cannot fit, so requests are preempted.
                kv_cache_memory_bytes: Some(0),
                ..base()
            },
        ),
    ];
    for (name, mut cfg) in variants {
        let tiny = cfg.kv_cache_memory_bytes == Some(0);
        if tiny {
            let bundle = ModelBundle::open(model).unwrap();
            let per_block = bundle.config.kv_bytes_per_token(4) as u64 * 16;
            cfg.kv_cache_memory_bytes = Some(per_block * 40);
        }
        let h = engine(model, cfg);
        let got = run_all(&h, &prompts, max_tokens);
        for (i, (a, b)) in alone.iter().zip(&got).enumerate() {
            assert_eq!(a, b, "{name}: request {i} differs from its solo run");
        }
        let stats = h.stats();
        if tiny {
            assert!(
                stats.num_preemptions_total > 0,
                "the tiny pool caused no preemption"
            );
        }
        if name == "batched" {
            assert!(
                stats.prefix_cache_hits_total > 0,
                "shared prefixes were not cached"
            );
        }
        h.shutdown();
    }
}

#[test]
fn default_model_outputs_are_batch_invariant() {
    check_invariance(&default_model(), 49152, 12);
}

#[test]
fn random_weight_models_are_batch_invariant() {
    for preset in ["tiny_llama", "tiny_qwen2", "tiny_qwen3"] {
        let dir = tempfile::tempdir().unwrap();
        let spec = ferrum_testkit::preset(preset).unwrap();
        ferrum_testkit::write_test_model(dir.path(), &spec).unwrap();
        check_invariance(dir.path(), 400, 16);
    }
}

#[test]
fn aborting_half_of_64_requests_returns_every_block() {
    let h = engine(&default_model(), base());
    let idle = h.stats().kv_cache_usage;
    let prompts: Vec<Vec<u32>> = (0..64u32)
        .map(|i| {
            (0..20 + i % 30)
                .map(|j| (i * 7 + j * 3 + 1) % 49152)
                .collect()
        })
        .collect();
    let mut streams: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut sp = SamplingParams::greedy(64);
            sp.ignore_eos = true;
            h.add_request(EngineRequest::new(format!("a{i}"), p.clone(), sp))
                .unwrap()
        })
        .collect();
    // Wait until every request produced a token, so all hold blocks.
    for s in streams.iter_mut() {
        assert!(s.blocking_next().is_some());
    }
    assert!(h.stats().kv_cache_usage > idle);
    let kept: Vec<_> = streams
        .drain(..)
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .collect();
    for (_, mut s) in kept {
        while let Some(o) = s.blocking_next() {
            assert_ne!(o.finish_reason, Some(FinishReason::Error));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.stats().num_running > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = h.stats();
    assert_eq!(s.num_running + s.num_waiting, 0);
    assert!(
        (s.kv_cache_usage - idle).abs() < 1e-12,
        "usage {} vs idle {idle}",
        s.kv_cache_usage
    );
}
