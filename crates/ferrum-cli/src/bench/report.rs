//! `bench serve`'s printout and result file, with vLLM's labels and JSON key names so that
//! scripts written for `vllm bench serve --save-result` read ours.
//!
//! Invariants: times in the JSON lists (`ttfts`, `itls`) are seconds, aggregate keys are
//! milliseconds (`mean_ttft_ms`, `p99_itl_ms`, …); a percentile key is `p{int}` for whole numbers
//! and `p{float}` otherwise (`p99`, `p99.9`), as vLLM writes them.

use serde_json::{json, Map, Value};

use super::metrics::{Metrics, RequestOutcome, Stats};

/// Settings of the run that go into the result file beside the measurements.
pub struct RunInfo<'a> {
    pub backend: &'a str,
    pub model_id: &'a str,
    pub tokenizer_id: &'a str,
    pub num_prompts: usize,
    pub request_rate: f64,
    pub burstiness: f64,
    pub max_concurrency: Option<usize>,
    pub duration: f64,
}

/// A metric named by `--percentile-metrics`: key, label and long name in vLLM's printout.
pub const METRICS: [(&str, &str, &str); 4] = [
    ("ttft", "TTFT", "Time to First Token"),
    ("tpot", "TPOT", "Time per Output Token (excl. 1st token)"),
    ("itl", "ITL", "Inter-token Latency"),
    ("e2el", "E2EL", "End-to-end Latency"),
];

fn metric<'m>(m: &'m Metrics, key: &str) -> Option<&'m Stats> {
    match key {
        "ttft" => Some(&m.ttft),
        "tpot" => Some(&m.tpot),
        "itl" => Some(&m.itl),
        "e2el" => Some(&m.e2el),
        _ => None,
    }
}

/// `99` → "99", `99.9` → "99.9".
pub fn percentile_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

fn line(label: &str, value: impl std::fmt::Display) -> String {
    format!("{label:<40} {value:<10}\n")
}

fn rule(title: &str, fill: char) -> String {
    let pad = 50usize.saturating_sub(title.chars().count());
    let left = pad / 2;
    let f = |n| fill.to_string().repeat(n);
    format!("{}{title}{}\n", f(left), f(pad - left))
}

/// The table vLLM prints at the end of a run, then the first distinct errors.
pub fn render(
    info: &RunInfo,
    m: &Metrics,
    selected: &[String],
    outcomes: &[RequestOutcome],
) -> String {
    let mut s = rule(" Serving Benchmark Result ", '=');
    s += &line("Successful requests:", m.completed);
    s += &line("Failed requests:", m.failed);
    if let Some(c) = info.max_concurrency {
        s += &line("Maximum request concurrency:", c);
    }
    s += &line("Benchmark duration (s):", format!("{:.2}", info.duration));
    s += &line("Total input tokens:", m.total_input);
    s += &line("Total generated tokens:", m.total_output);
    s += &line(
        "Request throughput (req/s):",
        format!("{:.2}", m.request_throughput),
    );
    s += &line(
        "Output token throughput (tok/s):",
        format!("{:.2}", m.output_throughput),
    );
    s += &line(
        "Peak output token throughput (tok/s):",
        format!("{:.2}", m.max_output_tokens_per_s),
    );
    s += &line(
        "Peak concurrent requests:",
        format!("{:.2}", m.max_concurrent_requests as f64),
    );
    s += &line(
        "Total Token throughput (tok/s):",
        format!("{:.2}", m.total_token_throughput),
    );
    for (key, label, name) in METRICS {
        let Some(st) = metric(m, key).filter(|_| selected.iter().any(|k| k == key)) else {
            continue;
        };
        s += &rule(name, '-');
        s += &line(&format!("Mean {label} (ms):"), format!("{:.2}", st.mean));
        s += &line(
            &format!("Median {label} (ms):"),
            format!("{:.2}", st.median),
        );
        for (p, v) in &st.percentiles {
            s += &line(
                &format!("P{} {label} (ms):", percentile_word(*p)),
                format!("{v:.2}"),
            );
        }
    }
    s += &"=".repeat(50);
    s += "\n";
    let errors = first_errors(outcomes, 5);
    if !errors.is_empty() {
        s += "First errors:\n";
        for (e, n) in errors {
            s += &format!("  {n} × {e}\n");
        }
    }
    s
}

/// Up to `k` distinct error messages in order of first appearance, with how often each came.
pub fn first_errors(outcomes: &[RequestOutcome], k: usize) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for o in outcomes.iter().filter(|o| !o.success) {
        if let Some(e) = out.iter_mut().find(|(e, _)| *e == o.error) {
            e.1 += 1;
        } else if out.len() < k {
            out.push((o.error.clone(), 1));
        }
    }
    out
}

/// The result file: vLLM's `result_json` keys.
pub fn result_json(
    info: &RunInfo,
    m: &Metrics,
    selected: &[String],
    outcomes: &[RequestOutcome],
) -> Value {
    let mut r = Map::new();
    r.insert("date".into(), json!(date_utc()));
    r.insert("endpoint_type".into(), json!(info.backend));
    r.insert("backend".into(), json!(info.backend));
    r.insert("label".into(), Value::Null);
    r.insert("model_id".into(), json!(info.model_id));
    r.insert("tokenizer_id".into(), json!(info.tokenizer_id));
    r.insert("num_prompts".into(), json!(info.num_prompts));
    r.insert(
        "request_rate".into(),
        if info.request_rate.is_finite() {
            json!(info.request_rate)
        } else {
            json!("inf")
        },
    );
    r.insert(
        "burstiness".into(),
        if info.burstiness.is_finite() {
            json!(info.burstiness)
        } else {
            json!("inf")
        },
    );
    r.insert("max_concurrency".into(), json!(info.max_concurrency));
    r.insert("duration".into(), json!(info.duration));
    r.insert("completed".into(), json!(m.completed));
    r.insert("failed".into(), json!(m.failed));
    r.insert("total_input_tokens".into(), json!(m.total_input));
    r.insert("total_output_tokens".into(), json!(m.total_output));
    r.insert("request_throughput".into(), json!(m.request_throughput));
    r.insert("request_goodput".into(), Value::Null);
    r.insert("output_throughput".into(), json!(m.output_throughput));
    r.insert(
        "total_token_throughput".into(),
        json!(m.total_token_throughput),
    );
    let col = |f: fn(&RequestOutcome) -> Value| Value::Array(outcomes.iter().map(f).collect());
    r.insert(
        "max_output_tokens_per_s".into(),
        json!(m.max_output_tokens_per_s),
    );
    r.insert(
        "max_concurrent_requests".into(),
        json!(m.max_concurrent_requests),
    );
    r.insert("input_lens".into(), col(|o| json!(o.prompt_len)));
    r.insert("output_lens".into(), json!(m.output_lens));
    r.insert("ttfts".into(), col(|o| json!(o.ttft)));
    r.insert("itls".into(), col(|o| json!(o.itl)));
    r.insert("generated_texts".into(), col(|o| json!(o.generated_text)));
    r.insert("errors".into(), col(|o| json!(o.error)));
    for (key, _, _) in METRICS {
        let Some(st) = metric(m, key).filter(|_| selected.iter().any(|k| k == key)) else {
            continue;
        };
        r.insert(format!("mean_{key}_ms"), json!(st.mean));
        r.insert(format!("median_{key}_ms"), json!(st.median));
        r.insert(format!("std_{key}_ms"), json!(st.std));
        for (p, v) in &st.percentiles {
            r.insert(format!("p{}_{key}_ms", percentile_word(*p)), json!(v));
        }
    }
    Value::Object(r)
}

/// `YYYYMMDD-HHMMSS` in UTC (vLLM writes local time in this format).
fn date_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::metrics::calculate_metrics;

    #[test]
    fn percentile_words_match_vllm() {
        assert_eq!(percentile_word(99.0), "99");
        assert_eq!(percentile_word(99.9), "99.9");
        assert_eq!(percentile_word(50.0), "50");
    }

    #[test]
    fn result_keys_follow_the_selected_metrics() {
        let ok = RequestOutcome {
            success: true,
            prompt_len: 4,
            output_tokens: 3,
            ttft: 0.1,
            itl: vec![0.1, 0.1],
            latency: 0.3,
            ..Default::default()
        };
        let bad = RequestOutcome {
            error: "HTTP 500: boom".into(),
            ..Default::default()
        };
        let outcomes = vec![ok, bad.clone(), bad];
        let m = calculate_metrics(&outcomes, 1.0, &[50.0, 99.9]);
        let info = RunInfo {
            backend: "openai",
            model_id: "m",
            tokenizer_id: "m",
            num_prompts: 3,
            request_rate: f64::INFINITY,
            burstiness: 1.0,
            max_concurrency: None,
            duration: 1.0,
        };
        let sel = vec!["ttft".to_string(), "e2el".to_string()];
        let r = result_json(&info, &m, &sel, &outcomes);
        assert_eq!(r["request_rate"], "inf");
        assert_eq!(
            (r["completed"].as_u64(), r["failed"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(r["output_lens"], json!([3, 0, 0]));
        assert!(r.get("p99.9_ttft_ms").is_some() && r.get("median_e2el_ms").is_some());
        assert!(r.get("mean_tpot_ms").is_none() && r.get("p99_ttft_ms").is_none());
        assert_eq!(r["date"].as_str().map(str::len), Some(15));
        let text = render(&info, &m, &sel, &outcomes);
        assert!(text.contains("Successful requests:                     1"));
        assert!(text.contains("P99.9 TTFT (ms):"));
        assert!(text.contains("2 × HTTP 500: boom"));
        assert!(!text.contains("TPOT"));
    }
}
