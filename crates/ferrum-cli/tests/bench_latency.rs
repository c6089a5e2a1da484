//! `ferrum bench latency` on a tiny random-weight model: every timed batch is reported, and the
//! mean and percentiles in the JSON are those of the listed latencies (numpy's definitions), and
//! the first-token and per-token times fit inside the latency they split.

use serde_json::Value;

#[test]
fn reports_each_batch_and_numpy_statistics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ferrum_testkit::preset("tiny_llama").expect("preset");
    ferrum_testkit::write_test_model(dir.path(), &spec).expect("write model");
    let json = dir.path().join("latency.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args(["bench", "latency", "--model"])
        .arg(dir.path())
        .args(["--input-len", "8", "--output-len", "5", "--batch-size", "3"])
        .args([
            "--num-iters-warmup",
            "1",
            "--num-iters",
            "4",
            "--threads",
            "1",
        ])
        .arg("--output-json")
        .arg(&json)
        .output()
        .expect("run ferrum");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    let mut l: Vec<f64> = r["latencies"]
        .as_array()
        .expect("latencies")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(l.len(), 4);
    assert!(l.iter().all(|&x| x > 0.0));
    let avg = l.iter().sum::<f64>() / 4.0;
    assert!((r["avg_latency"].as_f64().expect("avg") - avg).abs() < 1e-12);
    l.sort_by(f64::total_cmp);
    // np.percentile over 4 values: p50 = (l1 + l2)/2, p25 = l0 + 0.75·(l1 − l0), p99 = l2 + 0.97·(l3 − l2).
    let p = |k: &str| r["percentiles"][k].as_f64().expect("percentile");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(p("50"), (l[1] + l[2]) / 2.0));
    assert!(close(p("25"), l[0] + 0.75 * (l[1] - l[0])));
    assert!(close(p("99"), l[2] + 0.97 * (l[3] - l[2])));
    assert!(stdout.contains("Avg latency:") && stdout.contains("99% percentile latency:"));
    let line = |prefix: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim_end_matches(" seconds").parse().ok())
            .unwrap_or_else(|| panic!("no '{prefix}' line in {stdout}"))
    };
    let ttft = line("Avg time to first token: ");
    let tpot = line("Avg time per output token after the first: ");
    // A request's first token and its 4 later ones all arrive within its batch's latency.
    assert!(ttft > 0.0 && tpot > 0.0, "{stdout}");
    assert!(ttft + 4.0 * tpot <= avg * (1.0 + 1e-9), "{stdout}");
}
