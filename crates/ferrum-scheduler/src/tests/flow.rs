//! Exact plans: who is scheduled with how many tokens at each step.

use std::collections::HashMap;

use ferrum_types::{FinishReason, SamplingParams};

use super::executor::{run_to_completion, solo_output, FakeExecutor};
use super::{config, plan, prompt, request, scheduler, EOS};
use crate::{
    ModelRunnerOutput, Request, RequestStatus, SchedulerConfig, SchedulerError, SchedulingPolicy,
    TokenLogprobs,
};

fn p(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
    pairs.iter().map(|&(id, n)| (id.to_string(), n)).collect()
}

#[test]
fn chunked_prefill_with_a_16_token_budget() {
    let mut s = scheduler(config());
    s.add_request(request("a", prompt(1000, 40), 3))
        .expect("fits");
    s.add_request(request("b", prompt(2000, 10), 2))
        .expect("fits");
    let mut exec = FakeExecutor::default();
    let mut plans = Vec::new();
    let mut tokens_out: HashMap<String, usize> = HashMap::new();
    while s.has_unfinished_requests() {
        let (out, outputs) = exec.step(&mut s);
        plans.push(plan(&out));
        for o in outputs {
            *tokens_out.entry(o.request_id.to_string()).or_default() += o.new_token_ids.len();
        }
    }
    assert_eq!(
        plans,
        [
            p(&[("a", 16)]),          // a's first chunk takes the whole budget
            p(&[("a", 16)]),          // running first: a's second chunk
            p(&[("a", 8), ("b", 8)]), // a finishes its prompt, b gets the rest
            p(&[("a", 1), ("b", 2)]), // a decodes, b finishes its prompt
            p(&[("a", 1), ("b", 1)]), // a's third and b's second token end both
        ]
    );
    assert_eq!(tokens_out["a"], 3);
    assert_eq!(tokens_out["b"], 2);
}

#[test]
fn chunked_prefill_off_a_prompt_that_does_not_fit_waits() {
    let config = SchedulerConfig {
        enable_chunked_prefill: false,
        max_model_len: 16,
        ..config()
    };
    let mut s = scheduler(config);
    s.add_request(request("a", prompt(1000, 12), 2))
        .expect("fits");
    s.add_request(request("b", prompt(2000, 10), 2))
        .expect("fits");
    s.add_request(request("c", prompt(3000, 3), 2))
        .expect("fits");
    let mut exec = FakeExecutor::default();
    let (out, _) = exec.step(&mut s);
    // b does not fit the 4 tokens left, and c may not pass it.
    assert_eq!(plan(&out), p(&[("a", 12)]));
    let (out, _) = exec.step(&mut s);
    assert_eq!(plan(&out), p(&[("a", 1), ("b", 10), ("c", 3)]));
}

#[test]
fn max_num_seqs_caps_the_running_set() {
    let mut s = scheduler(SchedulerConfig {
        max_num_seqs: 3,
        ..config()
    });
    for (i, id) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let max_tokens = if i == 0 { 1 } else { 3 };
        s.add_request(request(id, prompt(1000 * (i as u32 + 1), 2), max_tokens))
            .expect("fits");
    }
    let mut exec = FakeExecutor::default();
    let (out, _) = exec.step(&mut s);
    assert_eq!(plan(&out), p(&[("a", 2), ("b", 2), ("c", 2)]));
    assert_eq!((s.num_running(), s.num_waiting()), (2, 2)); // a finished (max_tokens 1)
    let (out, _) = exec.step(&mut s);
    assert_eq!(out.finished_req_ids, ["a".into()]);
    assert_eq!(plan(&out), p(&[("b", 1), ("c", 1), ("d", 2)]));
}

#[test]
fn priority_policy_runs_lower_values_first_fcfs_runs_arrival_order() {
    for (policy, expected) in [
        (SchedulingPolicy::Priority, ["p1", "p3", "p5"]),
        (SchedulingPolicy::Fcfs, ["p5", "p1", "p3"]),
    ] {
        let mut s = scheduler(SchedulerConfig {
            max_num_seqs: 1,
            policy,
            ..config()
        });
        for (i, prio) in [5, 1, 3].into_iter().enumerate() {
            let r = request(&format!("p{prio}"), prompt(1000 * (i as u32 + 1), 3), 1);
            s.add_request(r.with_priority(prio)).expect("fits");
        }
        let mut exec = FakeExecutor::default();
        let order: Vec<String> = (0..3)
            .map(|_| {
                let (out, _) = exec.step(&mut s);
                out.scheduled_new_reqs[0].req_id.to_string()
            })
            .collect();
        assert_eq!(order, expected, "{policy:?}");
    }
}

#[test]
fn requests_that_can_never_fit_are_refused_at_admission() {
    let mut s = scheduler(SchedulerConfig {
        num_gpu_blocks: 11, // 10 blocks = 40 tokens
        max_model_len: 64,
        ..config()
    });
    let err = s.add_request(request("big", prompt(0, 30), 20)).err();
    assert_eq!(
        err,
        Some(SchedulerError::ExceedsKvCapacity {
            request_id: "big".into(),
            num_tokens: 49,
            needed_blocks: 13,
            available_blocks: 10,
        })
    );
    // 30 + 11 tokens: the last sampled token needs no KV, so 40 slots suffice.
    assert_eq!(s.add_request(request("edge", prompt(0, 30), 11)), Ok(()));
    let err = s.add_request(request("long", prompt(0, 64), 1)).err();
    assert!(matches!(err, Some(SchedulerError::PromptTooLong { .. })));
    let err = s.add_request(request("edge", prompt(0, 3), 1)).err();
    assert_eq!(err, Some(SchedulerError::DuplicateRequestId("edge".into())));
    let err = s.add_request(request("empty", vec![], 1)).err();
    assert_eq!(err, Some(SchedulerError::EmptyPrompt("empty".into())));
    assert_eq!(s.num_waiting(), 1);
    let msg = SchedulerError::ExceedsKvCapacity {
        request_id: "x".into(),
        num_tokens: 1,
        needed_blocks: 1,
        available_blocks: 0,
    }
    .to_string();
    assert!(msg.contains("lower max_tokens"));
}

#[test]
fn stop_conditions_end_requests_and_report_why() {
    let mut s = scheduler(config());
    let params = SamplingParams {
        stop_token_ids: vec![77],
        min_tokens: 1,
        ..SamplingParams::greedy(10)
    };
    s.add_request(Request::new("eos", prompt(0, 3), params.clone()).with_eos_token_ids(vec![EOS]))
        .expect("fits");
    s.add_request(Request::new("stop", prompt(10, 3), params.clone()))
        .expect("fits");
    s.add_request(Request::new("min", prompt(20, 3), params))
        .expect("fits");
    let out = s.schedule();
    let lp = |t| TokenLogprobs {
        sampled: crate::Logprob {
            token_id: t,
            logprob: -0.5,
        },
        top: vec![],
    };
    // Speculative-style multi-token samples: tokens after a stop are dropped.
    let runner = ModelRunnerOutput {
        req_ids: vec!["eos".into(), "stop".into(), "min".into()],
        sampled_token_ids: vec![vec![5, EOS, 6], vec![77, 8], vec![EOS]],
        logprobs: Some(vec![
            vec![lp(5), lp(EOS), lp(6)],
            vec![lp(77), lp(8)],
            vec![lp(EOS)],
        ]),
    };
    let outputs = s.update_from_output(&out, &runner);
    let by_id: HashMap<String, _> = outputs
        .iter()
        .map(|o| (o.request_id.to_string(), o))
        .collect();
    assert_eq!(by_id["eos"].new_token_ids, [5, EOS]);
    assert_eq!(by_id["eos"].new_logprobs.len(), 2);
    assert_eq!(by_id["eos"].finish_reason, Some(FinishReason::Stop));
    assert_eq!(by_id["stop"].new_token_ids, [77]);
    assert_eq!(by_id["stop"].stop_reason, Some(77));
    // EOS is no stop for "min": it has no EOS ids configured, and min_tokens is met anyway.
    assert_eq!(by_id["min"].finish_reason, None);
    assert_eq!(s.num_running(), 1);
    let out = s.schedule();
    let mut finished: Vec<String> = out.finished_req_ids.iter().map(|i| i.to_string()).collect();
    finished.sort();
    assert_eq!(finished, ["eos", "stop"]);
}

#[test]
fn every_request_gets_its_solo_output_in_a_batch() {
    let mut s = scheduler(config());
    let mut expected = HashMap::new();
    for i in 0..20u32 {
        let prompt = prompt(1000 * i, 3 + (i as usize * 7) % 30);
        let max_tokens = 1 + (i as usize * 5) % 12;
        expected.insert(format!("r{i}"), solo_output(&prompt, max_tokens));
        s.add_request(request(&format!("r{i}"), prompt, max_tokens))
            .expect("fits");
    }
    let results = run_to_completion(&mut s, 1000);
    for (id, want) in expected {
        let (got, reason) = &results[id.as_str()];
        assert_eq!(got, &want, "{id}");
        assert_eq!(*reason, Some(FinishReason::Length));
    }
    assert_eq!(s.stats().kv_cache_usage, 0.0);
}

#[test]
fn n_siblings_share_their_prompt_blocks() {
    let mut s = scheduler(config());
    let shared = prompt(500, 9);
    for id in ["s0", "s1", "s2"] {
        s.add_request(request(id, shared.clone(), 4)).expect("fits");
    }
    let mut exec = FakeExecutor::default();
    let (out, _) = exec.step(&mut s);
    assert_eq!(plan(&out), p(&[("s0", 9)]), "siblings wait for s0's blocks");
    let (out, _) = exec.step(&mut s);
    assert_eq!(plan(&out), p(&[("s0", 1), ("s1", 1), ("s2", 1)]));
    for new in &out.scheduled_new_reqs {
        assert_eq!(new.num_computed_tokens, 8);
        assert_eq!(new.block_ids[..2], s.kv_cache().block_table("s0")[..2]);
    }
    let shared_block = s.kv_cache().block_table("s0")[0];
    assert_eq!(s.kv_cache().pool().ref_cnt(shared_block), 3);
    assert_eq!(s.request("s1").and_then(|r| r.num_cached_tokens()), Some(8));
    let stats = s.stats();
    assert_eq!(
        (stats.prefix_cache_queries, stats.prefix_cache_hits),
        (27, 16)
    );
}

#[test]
fn aborting_half_of_64_running_requests_returns_every_block() {
    let mut s = scheduler(SchedulerConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: 2048,
        num_gpu_blocks: 2000,
        ..config()
    });
    let idle = s.stats().kv_cache_usage;
    for i in 0..64u32 {
        s.add_request(request(
            &format!("r{i}"),
            prompt(100 * i, 10 + i as usize),
            50,
        ))
        .expect("fits");
    }
    let mut exec = FakeExecutor::default();
    for _ in 0..5 {
        exec.step(&mut s);
    }
    assert_eq!(s.num_running(), 64);
    let held = |s: &crate::Scheduler, ids: &mut dyn Iterator<Item = String>| -> usize {
        ids.map(|id| s.kv_cache().block_table(&id).len()).sum()
    };
    let used_before = s.kv_cache().num_usable_blocks() - s.kv_cache().num_free_blocks();
    let aborted = held(&s, &mut (0..64).step_by(2).map(|i| format!("r{i}")));
    let n = s.abort_requests((0..64).step_by(2).map(|i| format!("r{i}")));
    assert_eq!(n, 32);
    let used_after = s.kv_cache().num_usable_blocks() - s.kv_cache().num_free_blocks();
    assert_eq!(used_before - used_after, aborted);
    assert_eq!(s.num_running(), 32);
    let (out, _) = exec.step(&mut s);
    assert_eq!(out.finished_req_ids.len(), 32);
    s.abort_requests((1..64).step_by(2).map(|i| format!("r{i}")));
    assert_eq!(s.stats().kv_cache_usage, idle);
    assert_eq!(
        s.kv_cache().num_free_blocks(),
        s.kv_cache().num_usable_blocks()
    );
    assert!(!s.has_unfinished_requests());
}

#[test]
fn an_abort_between_schedule_and_update_is_harmless() {
    let mut s = scheduler(config());
    s.add_request(request("a", prompt(0, 5), 3)).expect("fits");
    s.add_request(request("b", prompt(50, 5), 3)).expect("fits");
    let out = s.schedule();
    let mut exec = FakeExecutor::default();
    let runner = exec.execute(&s, &out);
    s.abort_requests(["a"]);
    let outputs = s.update_from_output(&out, &runner);
    assert_eq!(outputs.len(), 1);
    assert_eq!(&*outputs[0].request_id, "b");
    assert_eq!(s.request("a").map(|r| r.status()), None);
    assert_eq!(
        s.request("b").map(|r| r.status()),
        Some(RequestStatus::Running)
    );
}
