//! Preemption by recompute: exact states, completion in a tiny pool, and the starvation rule.

use std::collections::HashSet;

use super::executor::{solo_output, FakeExecutor};
use super::{config, plan, prompt, request, scheduler};
use crate::{RequestStatus, Scheduler, SchedulerConfig};

fn tiny(num_gpu_blocks: usize) -> Scheduler {
    scheduler(SchedulerConfig {
        num_gpu_blocks,
        ..config()
    })
}

#[test]
fn the_latest_request_is_preempted_and_resumes_from_the_front() {
    let mut s = tiny(6); // 5 blocks of 4 tokens
    s.add_request(request("a", prompt(0, 7), 6)).expect("fits");
    s.add_request(request("b", prompt(100, 7), 6))
        .expect("fits");
    let mut exec = FakeExecutor::default();
    exec.step(&mut s); // a: 7, b: 7 -> 2 blocks each
    exec.step(&mut s); // a: 8, b: 8 slots, still 2 blocks each
    assert_eq!(s.kv_cache().num_free_blocks(), 1);

    // a takes the last block for its 9th slot; b finds none and is the latest: b goes.
    let (out, _) = exec.step(&mut s);
    assert_eq!(plan(&out), [("a".to_string(), 1)]);
    assert_eq!(out.preempted_req_ids, ["b".into()]);
    let b = s.request("b").expect("b is waiting");
    assert_eq!(b.status(), RequestStatus::Preempted);
    assert_eq!((b.num_computed_tokens(), b.num_preemptions()), (0, 1));
    assert_eq!(b.output_token_ids().len(), 2);
    assert_eq!(s.waiting_ids().collect::<Vec<_>>(), [&"b".into()]);
    assert_eq!(s.stats().num_preemptions_total, 1);
    s.add_request(request("c", prompt(200, 2), 1))
        .expect("fits");

    // b needs 3 blocks to resume, 2 are free: it waits, and c (later) may not pass it.
    let (out, _) = exec.step(&mut s);
    assert_eq!(plan(&out), [("a".to_string(), 1)]);
    assert_eq!(
        s.waiting_ids().map(|i| i.to_string()).collect::<Vec<_>>(),
        ["b", "c"]
    );

    // Run a to completion; then b resumes as a cached request carrying its outputs.
    let mut resumed = None;
    while resumed.is_none() {
        let (out, _) = exec.step(&mut s);
        let c = &out.scheduled_cached_reqs;
        resumed = (0..c.len())
            .find(|&i| c.resumed_from_preemption[i])
            .map(|i| {
                (
                    c.req_ids[i].to_string(),
                    c.new_token_ids[i].len(),
                    c.new_block_ids[i].len(),
                )
            });
    }
    assert_eq!(resumed, Some(("b".to_string(), 2, 3)));
}

/// Runs everything, returning (steps, ids ever preempted).
fn run(s: &mut Scheduler, max_steps: usize) -> (usize, Vec<String>) {
    let mut exec = FakeExecutor::default();
    let mut preempted = Vec::new();
    while s.has_unfinished_requests() {
        assert!(exec.steps < max_steps, "livelock: {} steps", exec.steps);
        let (out, _) = exec.step(s);
        assert!(
            out.total_num_scheduled_tokens > 0,
            "a step without progress"
        );
        preempted.extend(out.preempted_req_ids.iter().map(|i| i.to_string()));
    }
    (exec.steps, preempted)
}

#[test]
fn a_tiny_pool_preempts_and_every_request_still_completes() {
    let mut s = tiny(9); // 8 blocks = 32 token slots; each request needs up to 4 blocks
    let mut expected = Vec::new();
    for i in 0..6u32 {
        let p = prompt(1000 * i, 6);
        expected.push((format!("r{i}"), solo_output(&p, 10)));
        s.add_request(request(&format!("r{i}"), p, 10))
            .expect("fits");
    }
    let mut exec = FakeExecutor::default();
    let mut got: std::collections::HashMap<String, Vec<u32>> = Default::default();
    let mut preempted = HashSet::new();
    while s.has_unfinished_requests() {
        assert!(exec.steps < 500, "livelock");
        let (out, outputs) = exec.step(&mut s);
        preempted.extend(out.preempted_req_ids.iter().map(|i| i.to_string()));
        for o in outputs {
            got.entry(o.request_id.to_string())
                .or_default()
                .extend(&o.new_token_ids);
        }
    }
    assert!(
        s.stats().num_preemptions_total > 0,
        "the pool was meant to be too small"
    );
    assert!(
        !preempted.contains("r0"),
        "the oldest request is never a victim"
    );
    for (id, want) in expected {
        assert_eq!(
            got[&id], want,
            "{id}: same tokens as alone, despite recompute"
        );
    }
    assert_eq!(s.stats().kv_cache_usage, 0.0);
}

#[test]
fn two_requests_that_cannot_both_finish_do_not_livelock() {
    // Each needs the whole pool (17 slots of 5 blocks x 4) at its end.
    for prefix_caching in [true, false] {
        let mut s = scheduler(SchedulerConfig {
            num_gpu_blocks: 6,
            enable_prefix_caching: prefix_caching,
            ..config()
        });
        s.add_request(request("a", prompt(0, 4), 14)).expect("fits");
        s.add_request(request("b", prompt(50, 4), 14))
            .expect("fits");
        let (steps, preempted) = run(&mut s, 200);
        assert!(preempted.iter().all(|id| id == "b"), "{preempted:?}");
        assert!(!preempted.is_empty());
        assert!(steps < 60, "{steps} steps");
    }
}

#[test]
fn under_the_priority_policy_the_lowest_priority_is_the_victim() {
    let mut s = scheduler(SchedulerConfig {
        num_gpu_blocks: 6,
        policy: crate::SchedulingPolicy::Priority,
        ..config()
    });
    // "low" arrives first but has the worse priority value.
    s.add_request(request("low", prompt(0, 7), 6).with_priority(9))
        .expect("fits");
    s.add_request(request("high", prompt(100, 7), 6).with_priority(0))
        .expect("fits");
    let mut exec = FakeExecutor::default();
    let mut preempted = Vec::new();
    for _ in 0..4 {
        let (out, _) = exec.step(&mut s);
        preempted.extend(out.preempted_req_ids.iter().map(|i| i.to_string()));
    }
    assert_eq!(preempted, ["low"]);
    assert_eq!(
        s.running_ids().map(|i| i.to_string()).collect::<Vec<_>>(),
        ["high"]
    );
}
