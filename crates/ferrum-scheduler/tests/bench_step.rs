//! Micro-benchmark of the scheduler's share of a step: `schedule()` + `update_from_output()`
//! with 256 running requests in decode (goal: at most 200 µs per step). Not a timed test:
//! `cargo test --release -p ferrum-scheduler --test bench_step -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use ferrum_scheduler::{ModelRunnerOutput, Request, Scheduler, SchedulerConfig, SchedulerOutput};
use ferrum_types::SamplingParams;

const NUM_REQUESTS: usize = 256;
const PROMPT_LEN: usize = 128;
const DECODE_STEPS: usize = 2000;

fn runner_output(out: &SchedulerOutput, step: usize) -> ModelRunnerOutput {
    let ids = out.scheduled_new_reqs.iter().map(|r| r.req_id.clone());
    let req_ids: Vec<_> = ids
        .chain(out.scheduled_cached_reqs.req_ids.iter().cloned())
        .collect();
    let sampled_token_ids = req_ids
        .iter()
        .map(|_| vec![(step % 1000) as u32 + 5])
        .collect();
    ModelRunnerOutput {
        req_ids,
        sampled_token_ids,
        logprobs: None,
    }
}

#[test]
#[ignore = "micro-benchmark; run with --ignored --nocapture"]
fn schedule_and_update_with_256_running_requests() {
    for prefix_caching in [true, false] {
        let config = SchedulerConfig {
            max_num_seqs: NUM_REQUESTS,
            max_num_batched_tokens: NUM_REQUESTS * PROMPT_LEN,
            max_model_len: 4096,
            block_size: 16,
            num_gpu_blocks: 1 + NUM_REQUESTS * (PROMPT_LEN + DECODE_STEPS + 16) / 16,
            enable_prefix_caching: prefix_caching,
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(config).expect("valid config");
        for i in 0..NUM_REQUESTS {
            let prompt = (0..PROMPT_LEN as u32)
                .map(|t| t + 1000 * i as u32)
                .collect();
            let params = SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(DECODE_STEPS + 10)
            };
            let id = format!("cmpl-{i:08x}-0000-4000-8000-000000000000");
            s.add_request(Request::new(id, prompt, params))
                .expect("fits");
        }
        // Prefill everything (not timed).
        let out = s.schedule();
        assert_eq!(out.scheduled_new_reqs.len(), NUM_REQUESTS);
        s.update_from_output(&out, &runner_output(&out, 0));

        let mut times = Vec::with_capacity(DECODE_STEPS);
        for step in 1..=DECODE_STEPS {
            let t0 = Instant::now();
            let out = s.schedule();
            let t1 = Instant::now();
            let runner = runner_output(&out, step);
            let t2 = Instant::now();
            let outputs = s.update_from_output(&out, &runner);
            let t3 = Instant::now();
            assert_eq!(outputs.len(), NUM_REQUESTS);
            times.push((t1 - t0) + (t3 - t2));
        }
        times.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = times.iter().sum::<Duration>() / DECODE_STEPS as u32;
        println!(
            "prefix caching {prefix_caching}: {NUM_REQUESTS} running, schedule()+update_from_output() \
             median {:.1} µs/step, mean {:.1}, p99 {:.1} (over {DECODE_STEPS} decode steps)",
            us(times[DECODE_STEPS / 2]),
            us(mean),
            us(times[DECODE_STEPS * 99 / 100]),
        );
        assert_eq!(s.num_running(), NUM_REQUESTS);
    }
}
