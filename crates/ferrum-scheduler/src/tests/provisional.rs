//! Async scheduling (provisional.rs): whole workloads run with every step planned before the
//! previous one's tokens are known give the same tokens, finish reasons and final state as
//! the one-step-at-a-time loop, through preemption, stop tokens, length limits, shared
//! prefixes and aborts.

use std::collections::HashMap;

use ferrum_types::{FinishReason, SamplingParams, TokenId};

use super::executor::FakeExecutor;
use super::{config, plan, prompt, scheduler, EOS};
use crate::{ModelRunnerOutput, Request, RequestId, Scheduler, SchedulerConfig, PLACEHOLDER_TOKEN};

type Results = HashMap<RequestId, (Vec<TokenId>, Option<FinishReason>)>;
/// Each step's plan: scheduled (request, tokens) sorted, and the preempted requests.
type Plans = Vec<(Vec<(String, usize)>, Vec<String>)>;

/// A step's plan and its preemptions.
fn step_plan(out: &crate::SchedulerOutput) -> (Vec<(String, usize)>, Vec<String>) {
    let preempted = out
        .preempted_req_ids
        .iter()
        .map(|i| i.to_string())
        .collect();
    (plan(out), preempted)
}

fn record(results: &mut Results, outputs: Vec<crate::EngineCoreOutput>) {
    for o in outputs {
        assert!(
            !o.new_token_ids.contains(&PLACEHOLDER_TOKEN),
            "{} reported a placeholder",
            o.request_id
        );
        let entry = results.entry(o.request_id.clone()).or_default();
        assert!(
            entry.1.is_none(),
            "{} reported after finishing",
            o.request_id
        );
        entry.0.extend(&o.new_token_ids);
        entry.1 = o.finish_reason;
    }
}

fn run_sync(s: &mut Scheduler, max_steps: usize) -> (Results, Plans) {
    let mut exec = FakeExecutor::default();
    let mut results = Results::new();
    let mut plans = Plans::new();
    while s.has_unfinished_requests() {
        assert!(exec.steps < max_steps, "no completion");
        let (out, outputs) = exec.step(s);
        plans.push(step_plan(&out));
        record(&mut results, outputs);
    }
    (results, plans)
}

/// The engine's async loop (ferrum-engine's core.rs) over the fake executor, which computes
/// each step's tokens at once but shows them to the scheduler one step late. `abort_at`:
/// (step, request) pairs aborted before that step is scheduled.
fn run_async(s: &mut Scheduler, max_steps: usize, abort_at: &[(usize, &str)]) -> (Results, Plans) {
    let mut exec = FakeExecutor::default();
    let mut results = Results::new();
    let mut plans = Plans::new();
    let mut in_flight: Option<ModelRunnerOutput> = None;
    while s.has_unfinished_requests() || in_flight.is_some() {
        assert!(exec.steps < max_steps, "no completion");
        for &(_, id) in abort_at.iter().filter(|(at, _)| *at == exec.steps) {
            s.abort_requests([id]);
        }
        if in_flight.is_some() && !s.can_schedule_ahead() {
            if let Some(prev) = in_flight.take() {
                record(&mut results, s.resolve_provisional(&prev));
            }
        }
        let out = s.schedule();
        if !out.is_empty() {
            plans.push(step_plan(&out));
        }
        let ran = exec.execute(s, &out);
        if let Some(prev) = in_flight.take() {
            record(&mut results, s.resolve_provisional(&prev));
        }
        let sampled: Vec<RequestId> = ran
            .req_ids
            .iter()
            .zip(&ran.sampled_token_ids)
            .filter(|(_, t)| !t.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        s.update_provisional(&out, &sampled);
        // As the executor: an empty step is done at once, nothing stays in flight.
        if !out.is_empty() {
            in_flight = Some(ran);
        }
    }
    (results, plans)
}

fn req(id: &str, prompt: Vec<TokenId>, params: SamplingParams) -> Request {
    Request::new(id, prompt, params).with_eos_token_ids(vec![EOS])
}

/// A mixed workload: long and short prompts, a shared prefix, stop tokens that end some
/// requests early (the fake model's tokens are 100..150; none with `stops` false), and
/// length limits.
fn workload(s: &mut Scheduler, stops: bool) {
    let shared = prompt(500, 9);
    for i in 0..10u32 {
        let mut p = if i % 3 == 0 {
            let mut p = shared.clone();
            p.push(7000 + i);
            p
        } else {
            prompt(1000 * i, 3 + (i as usize * 5) % 17)
        };
        p.truncate(40);
        let params = SamplingParams {
            stop_token_ids: if stops && i % 2 == 0 {
                (100..150).filter(|t| t % 7 == 0).collect()
            } else {
                Vec::new()
            },
            min_tokens: if i == 4 { 3 } else { 0 },
            ..SamplingParams::greedy(4 + (i as usize * 7) % 13)
        };
        s.add_request(req(&format!("r{i}"), p, params))
            .expect("fits");
    }
}

/// The workload through both loops: (sync scheduler, its results and plans, async ...).
fn both(
    cfg: SchedulerConfig,
    stops: bool,
) -> (Scheduler, Results, Plans, Scheduler, Results, Plans) {
    let mut a = scheduler(cfg.clone());
    workload(&mut a, stops);
    let (sync, sync_plans) = run_sync(&mut a, 2000);
    let mut b = scheduler(cfg);
    workload(&mut b, stops);
    let (asy, async_plans) = run_async(&mut b, 2000, &[]);
    (a, sync, sync_plans, b, asy, async_plans)
}

#[test]
fn planning_a_step_ahead_gives_the_same_outputs() {
    let (a, sync, _, b, asy, _) = both(config(), true);
    assert_eq!(sync.len(), 10);
    assert!(sync.values().all(|(_, f)| f.is_some()));
    assert!(
        sync.values().any(|(_, f)| *f == Some(FinishReason::Stop)),
        "some request meant to end on a stop token"
    );
    assert_eq!(asy, sync);
    assert_eq!(b.stats().kv_cache_usage, 0.0);
    assert_eq!(
        b.stats().prefix_cache_hits,
        a.stats().prefix_cache_hits,
        "the same blocks registered and found"
    );
}

#[test]
fn planning_ahead_through_preemption_gives_the_same_outputs() {
    for prefix_caching in [true, false] {
        let cfg = SchedulerConfig {
            num_gpu_blocks: 16,
            enable_prefix_caching: prefix_caching,
            ..config()
        };
        for stops in [true, false] {
            let (a, sync, sync_plans, b, asy, async_plans) = both(cfg.clone(), stops);
            assert!(a.stats().num_preemptions_total > 0, "meant to preempt");
            assert!(b.stats().num_preemptions_total > 0, "meant to preempt");
            assert_eq!(asy, sync, "prefix caching {prefix_caching}, stops {stops}");
            assert_eq!(b.stats().kv_cache_usage, 0.0);
            if !stops {
                // Only length limits: the very same steps, preemptions included.
                assert_eq!(async_plans, sync_plans, "prefix caching {prefix_caching}");
            }
        }
    }
}

#[test]
fn with_length_limits_only_the_plans_are_those_of_the_one_step_loop() {
    let (_, sync, sync_plans, _, asy, async_plans) = both(config(), false);
    assert_eq!(asy, sync);
    assert_eq!(async_plans, sync_plans);
}

#[test]
fn a_request_finishes_at_its_length_limit_before_its_last_token_is_known() {
    let cfg = SchedulerConfig {
        max_model_len: 12,
        ..config()
    };
    let mut s = scheduler(cfg);
    // Stops by max_model_len (8 + 4 = 12) and by max_tokens (2) alike.
    s.add_request(req("long", prompt(0, 8), SamplingParams::greedy(100)))
        .expect("fits");
    s.add_request(req("short", prompt(50, 3), SamplingParams::greedy(2)))
        .expect("fits");
    let (out, _) = run_async(&mut s, 100, &[]);
    assert_eq!(out["long"].0.len(), 4);
    assert_eq!(out["long"].1, Some(FinishReason::Length));
    assert_eq!(out["short"].0.len(), 2);
    assert_eq!(out["short"].1, Some(FinishReason::Length));
}

#[test]
fn aborts_between_provisional_steps_free_everything() {
    let mut s = scheduler(config());
    workload(&mut s, true);
    let (out, _) = run_async(&mut s, 2000, &[(2, "r1"), (3, "r2"), (5, "r5"), (9, "r7")]);
    assert_eq!(s.stats().kv_cache_usage, 0.0);
    assert!(!s.has_unfinished_requests());
    for id in ["r1", "r2", "r5", "r7"] {
        assert!(
            out.get(id).is_none_or(|(_, f)| f.is_none()),
            "{id} was aborted"
        );
    }
}

#[test]
fn a_request_that_needs_token_values_resolves_before_planning() {
    let mut s = scheduler(config());
    s.add_request(req("plain", prompt(0, 5), SamplingParams::greedy(6)))
        .expect("fits");
    assert!(s.can_schedule_ahead());
    let params = SamplingParams {
        repetition_penalty: 1.2,
        ..SamplingParams::greedy(6)
    };
    s.add_request(req("penalized", prompt(40, 5), params))
        .expect("fits");
    assert!(!s.can_schedule_ahead());
    let (out, _) = run_async(&mut s, 100, &[]);
    assert_eq!(out["plain"].0.len(), 6);
    assert_eq!(out["penalized"].0.len(), 6);
}
