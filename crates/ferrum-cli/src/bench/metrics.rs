//! vLLM's `calculate_metrics`: per-request outcomes → throughput and latency statistics.
//!
//! Definitions (all times in seconds here, reported in milliseconds):
//! - TTFT: send → first chunk carrying `choices`; E2EL (`latency`): send → last such chunk.
//! - TPOT per request: (E2EL − TTFT) / (output tokens − 1), only for requests with more than one
//!   output token; statistics are over requests.
//! - ITL: gaps between successive `choices` chunks, pooled over all requests (a chunk carrying
//!   several tokens shows as one long gap; TPOT is unaffected).
//! - mean, median, population std (numpy's default) and percentiles with numpy's linear
//!   interpolation; an empty list reports 0 like `np.mean([] or 0)`.
//! - Throughputs divide by the benchmark duration; failed requests count 0 output tokens and no
//!   input tokens.
//! - Peak output throughput: token events of successful requests (first at `start + ttft`, then
//!   one per ITL gap) counted in whole-second buckets from the earliest start, as vLLM counts
//!   them; peak concurrency: the most successful requests between start and end at one instant.

/// What one request measured (vLLM's `RequestFuncOutput`).
#[derive(Debug, Clone, Default)]
pub struct RequestOutcome {
    pub success: bool,
    pub prompt_len: usize,
    pub output_tokens: usize,
    pub ttft: f64,
    pub itl: Vec<f64>,
    pub latency: f64,
    pub generated_text: String,
    pub error: String,
    /// SSE events that carried `choices` (tokens), whether or not the server reported usage.
    pub token_chunks: usize,
    /// When the request was sent, in seconds on the run's clock.
    pub start_time: f64,
}

/// Mean, median, std and the asked-for percentiles of one metric, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub percentiles: Vec<(f64, f64)>,
}

/// The aggregate of a run.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub completed: usize,
    pub failed: usize,
    pub total_input: usize,
    pub total_output: usize,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    /// Output tokens per request, 0 for failed ones (vLLM's `actual_output_lens`).
    pub output_lens: Vec<usize>,
    pub ttft: Stats,
    pub tpot: Stats,
    pub itl: Stats,
    pub e2el: Stats,
    pub max_output_tokens_per_s: f64,
    pub max_concurrent_requests: usize,
}

/// `np.percentile(values, p)` with linear interpolation; `p` in [0, 100].
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// Statistics of `seconds`, reported in milliseconds.
pub fn stats(seconds: &[f64], percentiles: &[f64]) -> Stats {
    let zero = [0.0];
    let v = if seconds.is_empty() {
        &zero[..]
    } else {
        seconds
    };
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    Stats {
        mean: mean * 1e3,
        median: percentile(v, 50.0) * 1e3,
        std: var.sqrt() * 1e3,
        percentiles: percentiles
            .iter()
            .map(|&p| (p, percentile(v, p) * 1e3))
            .collect(),
    }
}

/// Most token events in one whole-second bucket, and the most requests in flight at once.
pub fn peaks(outcomes: &[RequestOutcome]) -> (f64, usize) {
    let ok: Vec<&RequestOutcome> = outcomes.iter().filter(|o| o.success).collect();
    let Some(t0) = ok.iter().map(|o| o.start_time).reduce(f64::min) else {
        return (0.0, 0);
    };
    let mut buckets: Vec<usize> = Vec::new();
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for o in &ok {
        let mut t = o.start_time + o.ttft;
        for gap in std::iter::once(&0.0).chain(&o.itl) {
            t += gap;
            let b = (t - t0).max(0.0) as usize;
            if buckets.len() <= b {
                buckets.resize(b + 1, 0);
            }
            buckets[b] += 1;
        }
        edges.push((o.start_time, 1));
        edges.push((o.start_time + o.latency, -1));
    }
    // Ends sort before starts at the same instant: back-to-back requests do not overlap.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    let peak = buckets.iter().copied().max().unwrap_or(0);
    (peak as f64, most as usize)
}

pub fn calculate_metrics(
    outcomes: &[RequestOutcome],
    duration: f64,
    percentiles: &[f64],
) -> Metrics {
    let mut output_lens = Vec::with_capacity(outcomes.len());
    let (mut ttfts, mut tpots, mut itls, mut e2els) = (vec![], vec![], vec![], vec![]);
    let (mut completed, mut total_input) = (0, 0);
    for o in outcomes {
        if !o.success {
            output_lens.push(0);
            continue;
        }
        output_lens.push(o.output_tokens);
        total_input += o.prompt_len;
        if o.output_tokens > 1 {
            tpots.push((o.latency - o.ttft) / (o.output_tokens - 1) as f64);
        }
        itls.extend_from_slice(&o.itl);
        ttfts.push(o.ttft);
        e2els.push(o.latency);
        completed += 1;
    }
    let total_output: usize = output_lens.iter().sum();
    let (max_output_tokens_per_s, max_concurrent_requests) = peaks(outcomes);
    Metrics {
        completed,
        failed: outcomes.len() - completed,
        total_input,
        total_output,
        request_throughput: completed as f64 / duration,
        output_throughput: total_output as f64 / duration,
        total_token_throughput: (total_input + total_output) as f64 / duration,
        output_lens,
        ttft: stats(&ttfts, percentiles),
        tpot: stats(&tpots, percentiles),
        itl: stats(&itls, percentiles),
        e2el: stats(&e2els, percentiles),
        max_output_tokens_per_s,
        max_concurrent_requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn percentiles_interpolate_linearly_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0];
        // np.percentile([1,2,3,4], [0, 50, 90, 99, 100]) = 1, 2.5, 3.7, 3.97, 4
        for (p, want) in [
            (0.0, 1.0),
            (50.0, 2.5),
            (90.0, 3.7),
            (99.0, 3.97),
            (100.0, 4.0),
        ] {
            assert!(
                close(percentile(&v, p), want),
                "p{p}: {}",
                percentile(&v, p)
            );
        }
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn stats_use_population_std_and_report_ms() {
        let s = stats(&[0.001, 0.002, 0.003, 0.010], &[99.0]);
        assert!(close(s.mean, 4.0));
        assert!(close(s.median, 2.5));
        // np.std([1,2,3,10]) = sqrt(((3)^2+(2)^2+(1)^2+(6)^2)/4) = sqrt(12.5)
        assert!(close(s.std, 12.5f64.sqrt()));
        // np.percentile([1,2,3,10], 99) = 3 + 0.97·7 = 9.79
        assert!(close(s.percentiles[0].1, 9.79));
        let empty = stats(&[], &[50.0]);
        assert_eq!(
            (empty.mean, empty.std, empty.percentiles[0].1),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn peaks_count_token_events_per_second_and_overlap() {
        let req = |start: f64, ttft: f64, itl: Vec<f64>, latency: f64| RequestOutcome {
            success: true,
            start_time: start,
            ttft,
            itl,
            latency,
            ..Default::default()
        };
        // Token events: a at 10.5, 10.9, 11.25; b at 10.95, 11.1, 11.3, 11.35; c at 12.5.
        let a = req(10.2, 0.3, vec![0.4, 0.35], 1.05);
        let b = req(10.3, 0.65, vec![0.15, 0.2, 0.05], 1.05);
        let c = req(10.3 + 1.05, 1.15, vec![], 1.15);
        let failed = RequestOutcome::default();
        // Buckets from 10.2: [10.2, 11.2) holds 10.5, 10.9, 10.95, 11.1 → 4; [11.2, 12.2) holds
        // 11.25, 11.3, 11.35 → 3; [12.2, 13.2) holds 12.5. The failed request (start 0) neither
        // starts the clock nor counts.
        let (tok, conc) = peaks(&[a.clone(), b.clone(), c.clone(), failed]);
        assert_eq!(tok, 4.0);
        // a [10.2, 11.25], b [10.3, 11.35], c [11.35, 12.5]: c starts as b ends → 2 at most.
        assert_eq!(conc, 2);
        // d [10.25, 12.25] overlaps a and b at 10.3 → 3.
        let d = req(10.25, 0.1, vec![], 2.0);
        assert_eq!(peaks(&[a, b, c, d]).1, 3);
        assert_eq!(peaks(&[]), (0.0, 0));
    }

    #[test]
    fn metrics_follow_vllm_definitions() {
        // Request a: 5 tokens in chunks at 0.1, 0.15, 0.2, 0.3 (one chunk carried 2 tokens).
        let a = RequestOutcome {
            success: true,
            prompt_len: 10,
            output_tokens: 5,
            ttft: 0.1,
            itl: vec![0.05, 0.05, 0.1],
            latency: 0.3,
            ..Default::default()
        };
        // Request b: one token only: no TPOT, no ITL.
        let b = RequestOutcome {
            success: true,
            prompt_len: 20,
            output_tokens: 1,
            ttft: 0.2,
            latency: 0.2,
            ..Default::default()
        };
        // Request c: 3 tokens, TTFT 0.3, gaps 0.1 and 0.3.
        let c = RequestOutcome {
            success: true,
            prompt_len: 30,
            output_tokens: 3,
            ttft: 0.3,
            itl: vec![0.1, 0.3],
            latency: 0.7,
            ..Default::default()
        };
        let failed = RequestOutcome {
            prompt_len: 40,
            error: "HTTP 500".into(),
            ..Default::default()
        };
        let m = calculate_metrics(&[a, b, c, failed], 2.0, &[50.0, 99.0]);
        assert_eq!((m.completed, m.failed), (3, 1));
        assert_eq!((m.total_input, m.total_output), (60, 9));
        assert_eq!(m.output_lens, vec![5, 1, 3, 0]);
        assert!(close(m.request_throughput, 1.5));
        assert!(close(m.output_throughput, 4.5));
        assert!(close(m.total_token_throughput, 34.5));
        // TTFT over [0.1, 0.2, 0.3].
        assert!(close(m.ttft.mean, 200.0) && close(m.ttft.median, 200.0));
        assert!(close(m.ttft.percentiles[1].1, 298.0));
        // TPOT: a = (0.3−0.1)/4 = 0.05, c = (0.7−0.3)/2 = 0.2; b has none.
        assert!(close(m.tpot.mean, 125.0));
        assert!(close(m.tpot.std, 75.0));
        assert!(close(m.tpot.percentiles[1].1, 50.0 + 0.99 * 150.0));
        // ITL pooled: [0.05, 0.05, 0.1, 0.1, 0.3].
        assert!(close(m.itl.mean, 120.0));
        assert!(close(m.itl.median, 100.0));
        assert!(close(m.itl.percentiles[1].1, 100.0 + 0.96 * 200.0));
        // E2EL over [0.3, 0.2, 0.7].
        assert!(close(m.e2el.mean, 400.0) && close(m.e2el.median, 300.0));
    }
}
