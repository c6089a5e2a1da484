//! Property test: random workloads and configurations, run to completion against the fake
//! executor (which checks every diff against the KV manager's block tables).
//!
//! Properties: admission refuses exactly the requests that could never fit; every step with
//! unfinished requests makes progress and respects the budget and `max_num_seqs`; every admitted
//! request that is not aborted finishes with exactly its solo output; all blocks come back.

use std::collections::HashMap;

use proptest::prelude::*;

use super::executor::{solo_output, FakeExecutor};
use super::request;
use crate::{SchedulerConfig, SchedulerError, SchedulingPolicy};

#[derive(Debug, Clone)]
struct Workload {
    config: SchedulerConfig,
    /// (family, prompt length, max_tokens, priority, step at which to abort it)
    requests: Vec<(u32, usize, usize, i32, Option<usize>)>,
}

fn workload() -> impl Strategy<Value = Workload> {
    let config = (
        prop::sample::select(vec![1usize, 2, 4, 16]),
        3usize..60,
        1usize..8,
        0usize..40,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1usize..12),
    );
    let requests = prop::collection::vec(
        (
            0u32..3,
            1usize..40,
            1usize..20,
            0i32..3,
            prop::option::weighted(0.15, 0usize..30),
        ),
        1..12,
    );
    (config, requests).prop_map(|(c, requests)| {
        let (block_size, blocks, seqs, extra_budget, chunked, prefix, priority, threshold) = c;
        let max_model_len = 48;
        let budget = if chunked {
            seqs + extra_budget
        } else {
            max_model_len + extra_budget
        };
        Workload {
            config: SchedulerConfig {
                max_num_seqs: seqs,
                max_num_batched_tokens: budget,
                max_model_len,
                block_size,
                num_gpu_blocks: 1 + blocks * 4 / block_size.min(4),
                enable_prefix_caching: prefix,
                enable_chunked_prefill: chunked,
                policy: if priority {
                    SchedulingPolicy::Priority
                } else {
                    SchedulingPolicy::Fcfs
                },
                long_prefill_token_threshold: threshold.filter(|_| chunked),
            },
            requests,
        }
    })
}

/// Prompts of one family share prefixes.
fn family_prompt(family: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 10 + (i * 3 + family * (i / 5)) % 7)
        .collect()
}

fn run(w: Workload) -> Result<(), TestCaseError> {
    let mut s = super::scheduler(w.config.clone());
    let usable = w.config.num_gpu_blocks - 1;
    let mut expected = HashMap::new();
    let mut aborts: Vec<(usize, String)> = Vec::new();
    for (i, &(family, len, max_tokens, prio, abort_at)) in w.requests.iter().enumerate() {
        let id = format!("r{i}");
        let prompt = family_prompt(family, len);
        let r = request(&id, prompt.clone(), max_tokens).with_priority(prio);
        let kv_tokens = (len + max_tokens).min(w.config.max_model_len) - 1;
        let fits =
            len < w.config.max_model_len && kv_tokens.div_ceil(w.config.block_size) <= usable;
        match s.add_request(r) {
            Ok(()) => {
                prop_assert!(fits, "{} admitted but cannot fit", id);
                let n = max_tokens.min(w.config.max_model_len - len);
                expected.insert(id.clone(), solo_output(&prompt, n));
                if let Some(step) = abort_at {
                    aborts.push((step, id));
                }
            }
            Err(
                SchedulerError::PromptTooLong { .. } | SchedulerError::ExceedsKvCapacity { .. },
            ) => {
                prop_assert!(!fits, "{} refused but fits", id);
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }
    let mut exec = FakeExecutor::default();
    let mut got: HashMap<String, Vec<u32>> = HashMap::new();
    while s.has_unfinished_requests() {
        prop_assert!(exec.steps < 3000, "livelock");
        for (_, id) in aborts.iter().filter(|(step, _)| *step == exec.steps) {
            s.abort_requests([id]);
            expected.remove(id);
            got.remove(id);
        }
        if !s.has_unfinished_requests() {
            break;
        }
        let (out, outputs) = exec.step(&mut s);
        prop_assert!(out.total_num_scheduled_tokens > 0, "no progress");
        prop_assert!(s.num_running() <= w.config.max_num_seqs);
        for o in outputs {
            got.entry(o.request_id.to_string())
                .or_default()
                .extend(&o.new_token_ids);
        }
    }
    for (id, want) in &expected {
        prop_assert_eq!(got.get(id), Some(want), "{}", id);
    }
    prop_assert_eq!(s.kv_cache().num_free_blocks(), usable);
    prop_assert_eq!(s.stats().kv_cache_usage, 0.0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_workloads_complete_with_solo_outputs(w in workload()) {
        run(w)?;
    }
}
