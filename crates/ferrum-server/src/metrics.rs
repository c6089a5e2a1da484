//! Prometheus metrics with vLLM's names, so that existing dashboards work unchanged.
//!
//! Invariants:
//! - Names, types and histogram buckets follow vLLM's: counters are families without `_total`
//!   whose sample carries `_total` (as Python's prometheus_client writes them); every vLLM
//!   series has the labels `model_name` and `engine` (the model's index when several are
//!   served), and each family is written once with one sample per model.
//! - Engine gauges and token counters are read from the engine's stats snapshot at scrape
//!   time; request latencies are recorded by the server as requests finish.
//! - Recording is lock-free (atomics); the label sets are fixed at start-up.
//! - `vllm:request_queue_time_seconds` is measured from arrival to the hand-over to the engine
//!   (validation, tokenization, admission), the part of the wait the server can see.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrum_types::EngineStats;

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Finish reasons counted by `vllm:request_success_total`.
pub const FINISH_REASONS: [&str; 4] = ["stop", "length", "abort", "error"];

/// Routes counted by `http_requests_total` (the last is everything else).
pub const HANDLERS: [&str; 10] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/tokenize",
    "/detokenize",
    "/health",
    "/metrics",
    "/version",
    "/ping",
    "other",
];
const METHODS: [&str; 3] = ["GET", "POST", "other"];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A histogram with fixed buckets; the sum is an f64 stored as bits.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{bound:?}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        let sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum:?}");
    }
}

/// The vLLM series of one model (one engine).
pub struct ModelMetrics {
    labels: String,
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub queue_time: Histogram,
    success: [AtomicU64; 4],
}

impl ModelMetrics {
    /// `engine` is the model's index (vLLM's `engine` label), `model_name` its first name.
    pub fn new(engine: usize, model_name: &str) -> Self {
        let escaped = model_name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        Self {
            labels: format!("engine=\"{engine}\",model_name=\"{escaped}\""),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(LATENCY_BUCKETS),
            queue_time: Histogram::new(LATENCY_BUCKETS),
            success: Default::default(),
        }
    }

    /// One finished choice.
    pub fn count_finished(&self, reason: &str) {
        let i = FINISH_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(3);
        self.success[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// HTTP counts and durations, for the whole server.
pub struct HttpMetrics {
    http_count: Vec<AtomicU64>,
    http_duration: Vec<Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let n = HANDLERS.len() * METHODS.len();
        Self {
            http_count: (0..n * STATUS_CLASSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            http_duration: (0..n).map(|_| Histogram::new(HTTP_BUCKETS)).collect(),
        }
    }
}

impl HttpMetrics {
    /// One HTTP response.
    pub fn record_http(&self, handler: &str, method: &str, status: u16, seconds: f64) {
        let h = HANDLERS
            .iter()
            .position(|x| *x == handler)
            .unwrap_or(HANDLERS.len() - 1);
        let m = METHODS
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let s = usize::from((status / 100).clamp(1, 5) - 1);
        let hm = h * METHODS.len() + m;
        self.http_count[hm * STATUS_CLASSES.len() + s].fetch_add(1, Ordering::Relaxed);
        self.http_duration[hm].observe(seconds);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP http_requests_total HTTP requests by handler, method and status class.\n# TYPE http_requests_total counter");
        for (h, handler) in HANDLERS.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (s, class) in STATUS_CLASSES.iter().enumerate() {
                    let v = self.http_count[(h * METHODS.len() + m) * STATUS_CLASSES.len() + s]
                        .load(Ordering::Relaxed);
                    if v > 0 {
                        let _ = writeln!(out, "http_requests_total{{handler=\"{handler}\",method=\"{method}\",status=\"{class}\"}} {v}");
                    }
                }
            }
        }
        let _ = writeln!(out, "# HELP http_request_duration_seconds HTTP request latency.\n# TYPE http_request_duration_seconds histogram");
        for (h, handler) in HANDLERS.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                let hist = &self.http_duration[h * METHODS.len() + m];
                if hist.count.load(Ordering::Relaxed) > 0 {
                    hist.render(
                        out,
                        "http_request_duration_seconds",
                        &format!("handler=\"{handler}\",method=\"{method}\""),
                    );
                }
            }
        }
    }
}

/// A family name, its help, and how to read its value from a stats snapshot.
type Series<T> = (&'static str, &'static str, fn(&EngineStats) -> T);
/// A histogram family, and how to find it in a model's metrics.
type HistogramSeries = (&'static str, &'static str, fn(&ModelMetrics) -> &Histogram);

/// The text exposition: every family once, with one sample (set) per model, engine stats
/// included, then the HTTP series.
pub fn render(models: &[(&ModelMetrics, EngineStats)], http: &HttpMetrics) -> String {
    let mut out = String::with_capacity(16 * 1024 * models.len().max(1));
    let family = |out: &mut String, kind: &str, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let gauges: [Series<f64>; 3] = [
        (
            "vllm:num_requests_running",
            "Requests in the model execution batch.",
            |s| s.num_running as f64,
        ),
        (
            "vllm:num_requests_waiting",
            "Requests waiting to be scheduled.",
            |s| s.num_waiting as f64,
        ),
        (
            "vllm:kv_cache_usage_perc",
            "KV-cache usage; 1 means 100 percent.",
            |s| s.kv_cache_usage,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, "gauge", name, help);
        for (m, s) in models {
            let _ = writeln!(out, "{name}{{{}}} {:?}", m.labels, value(s));
        }
    }
    let counters: [Series<u64>; 5] = [
        ("vllm:num_preemptions", "Cumulative preemptions.", |s| {
            s.num_preemptions_total
        }),
        ("vllm:prompt_tokens", "Prefill tokens processed.", |s| {
            s.prompt_tokens_total
        }),
        (
            "vllm:generation_tokens",
            "Generation tokens processed.",
            |s| s.generation_tokens_total,
        ),
        (
            "vllm:prefix_cache_queries",
            "Prefix-cache queries, in tokens.",
            |s| s.prefix_cache_queries_total,
        ),
        (
            "vllm:prefix_cache_hits",
            "Prefix-cache hits, in tokens.",
            |s| s.prefix_cache_hits_total,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, "counter", name, help);
        for (m, s) in models {
            let _ = writeln!(out, "{name}_total{{{}}} {}", m.labels, value(s));
        }
    }
    family(
        &mut out,
        "counter",
        "vllm:request_success",
        "Finished requests by finish reason.",
    );
    for (m, _) in models {
        for (reason, c) in FINISH_REASONS.iter().zip(&m.success) {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{},finished_reason=\"{reason}\"}} {}",
                m.labels,
                c.load(Ordering::Relaxed)
            );
        }
    }
    let histograms: [HistogramSeries; 4] = [
        (
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            |m| &m.ttft,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Time between tokens.",
            |m| &m.itl,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            |m| &m.e2e,
        ),
        (
            "vllm:request_queue_time_seconds",
            "Time before the engine took the request.",
            |m| &m.queue_time,
        ),
    ];
    for (name, help, hist) in histograms {
        family(&mut out, "histogram", name, help);
        for (m, _) in models {
            hist(m).render(&mut out, name, &m.labels);
        }
    }
    http.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_vllm_names() {
        let m = ModelMetrics::new(0, "qwen\"3");
        let http = HttpMetrics::default();
        m.ttft.observe(0.03);
        m.count_finished("stop");
        http.record_http("/v1/models", "GET", 200, 0.001);
        let stats = EngineStats {
            num_running: 2,
            kv_cache_usage: 0.5,
            ..EngineStats::default()
        };
        let text = render(&[(&m, stats)], &http);
        for needle in [
            "vllm:num_requests_running{engine=\"0\",model_name=\"qwen\\\"3\"} 2.0",
            "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"qwen\\\"3\"} 0.5",
            "vllm:prompt_tokens_total{",
            "vllm:request_success_total{engine=\"0\",model_name=\"qwen\\\"3\",finished_reason=\"stop\"} 1",
            "vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"qwen\\\"3\",le=\"0.04\"} 1",
            "vllm:time_to_first_token_seconds_count{",
            "vllm:prefix_cache_hits_total{",
            "http_requests_total{handler=\"/v1/models\",method=\"GET\",status=\"2xx\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle}\n{text}");
        }
    }

    #[test]
    fn several_models_share_each_family_once() {
        let a = ModelMetrics::new(0, "a");
        let b = ModelMetrics::new(1, "b");
        b.count_finished("length");
        let sa = EngineStats {
            num_running: 1,
            ..EngineStats::default()
        };
        let sb = EngineStats {
            num_running: 3,
            ..EngineStats::default()
        };
        let text = render(&[(&a, sa), (&b, sb)], &HttpMetrics::default());
        assert_eq!(
            text.matches("# TYPE vllm:num_requests_running gauge")
                .count(),
            1
        );
        assert!(text.contains("vllm:num_requests_running{engine=\"0\",model_name=\"a\"} 1.0"));
        assert!(text.contains("vllm:num_requests_running{engine=\"1\",model_name=\"b\"} 3.0"));
        assert!(text.contains(
            "vllm:request_success_total{engine=\"1\",model_name=\"b\",finished_reason=\"length\"} 1"
        ));
        assert!(text.contains(
            "vllm:request_success_total{engine=\"0\",model_name=\"a\",finished_reason=\"length\"} 0"
        ));
    }
}
