//! `ferrum bench serve` against a scripted SSE server started by the test: request counts,
//! token counting from `usage` when one event carries two tokens, injected failures with their
//! message, the concurrency limit, and vLLM's keys in the result file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
    loading: AtomicUsize,
}

/// Method, path, headers (names lowercased) and body of one request.
type HttpRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 request; `None` at EOF.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<HttpRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

fn respond_json(w: &mut TcpStream, status: &str, body: &Value) {
    let b = body.to_string();
    let _ = write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
        b.len()
    );
}

fn chunk(w: &mut TcpStream, s: &str) {
    let _ = write!(w, "{:x}\r\n{s}\r\n", s.len());
    let _ = w.flush();
}

/// Streams `max_tokens` tokens two per event, then a usage event and `[DONE]`; requests whose
/// id ends in a number ≡ 1 (mod 3) get a 500 in OpenAI's error shape. `/v1/broken/...` always
/// fails; `/v1/loading/...` answers 503 to its first two requests, as a loading server does;
/// `/v1/textonly/...` refuses token-id prompts with a 400.
fn handle(stream: TcpStream, seen: Arc<Seen>) {
    // Each event leaves at once (no Nagle delay), so the client's gaps are the server's sleeps.
    let _ = stream.set_nodelay(true);
    let mut r = BufReader::new(stream.try_clone().expect("clone socket"));
    let mut w = stream;
    while let Some((method, path, headers, body)) = read_request(&mut r) {
        if method == "GET" && path == "/v1/models" {
            respond_json(
                &mut w,
                "200 OK",
                &json!({"object": "list", "data": [{"id": "fake-model"}]}),
            );
            continue;
        }
        if path == "/v1/loading/completions" && seen.loading.fetch_add(1, Ordering::SeqCst) < 2 {
            respond_json(
                &mut w,
                "503 Service Unavailable",
                &json!({"error": {"message": "the model is loading", "type": "server_error"}}),
            );
            continue;
        }
        if path == "/v1/broken/completions" {
            respond_json(
                &mut w,
                "500 Internal Server Error",
                &json!({"error": {"message": "broken endpoint", "type": "server_error"}}),
            );
            continue;
        }
        let req: Value = serde_json::from_slice(&body).expect("JSON body");
        if path == "/v1/textonly/completions" && !req["prompt"].is_string() {
            seen.bodies.lock().expect("lock").push(req.clone());
            respond_json(
                &mut w,
                "400 Bad Request",
                &json!({"error": {"message": "prompt must be a string", "type": "invalid_request_error"}}),
            );
            continue;
        }
        let id = headers
            .iter()
            .find(|(k, _)| k == "x-request-id")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        seen.requests.fetch_add(1, Ordering::SeqCst);
        seen.bodies.lock().expect("lock").push(req.clone());
        let n: u64 = id
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0);
        if id.ends_with(|c: char| c.is_ascii_digit()) && n % 3 == 1 {
            respond_json(
                &mut w,
                "500 Internal Server Error",
                &json!({"error": {"message": "injected failure", "type": "server_error", "code": 500}}),
            );
            continue;
        }
        let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let prompt_len = req["prompt"].as_array().map(Vec::len);
        let max_tokens = req["max_tokens"].as_u64().unwrap_or(16);
        let _ = write!(w, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
        chunk(&mut w, ": keep-alive\n\n");
        let mut sent = 0;
        while sent < max_tokens {
            std::thread::sleep(Duration::from_millis(3));
            let k = (max_tokens - sent).min(2);
            sent += k;
            let ev = json!({"id": "c", "object": "text_completion", "model": "fake-model",
                            "choices": [{"index": 0, "text": "ab".repeat(k as usize), "finish_reason": null}]});
            chunk(&mut w, &format!("data: {ev}\n\n"));
        }
        let mut usage =
            json!({"id": "c", "choices": [], "usage": {"completion_tokens": max_tokens}});
        // Token counts of a text prompt are the server's business: this one reports none.
        if let Some(n) = prompt_len {
            usage["usage"]["prompt_tokens"] = json!(n);
        }
        chunk(&mut w, &format!("data: {usage}\n\ndata: [DONE]\n\n"));
        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
        chunk(&mut w, "");
    }
}

fn start_server() -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Seen::default());
    let s = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let s = Arc::clone(&s);
            std::thread::spawn(move || handle(stream, s));
        }
    });
    (url, seen)
}

fn bench(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .arg("bench")
        .arg("serve")
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run ferrum")
}

#[test]
fn counts_tokens_failures_and_writes_vllm_keys() {
    let (url, seen) = start_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let result = dir.path().join("r.json");
    let out = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "random",
        "--random-input-len",
        "12",
        "--random-output-len",
        "5",
        "--num-prompts",
        "10",
        "--request-rate",
        "200",
        "--max-concurrency",
        "2",
        "--ignore-eos",
        "--seed",
        "3",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--result-file",
        result.to_str().expect("path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Initial test + 10; ids 1, 4 and 7 fail.
    assert_eq!(seen.requests.load(Ordering::SeqCst), 11);
    assert!(seen.max_in_flight.load(Ordering::SeqCst) <= 2);
    for b in seen.bodies.lock().expect("lock").iter() {
        assert_eq!(b["model"], "fake-model");
        assert_eq!(b["prompt"].as_array().map(Vec::len), Some(12));
        assert_eq!(b["max_tokens"], 5);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
    }
    assert!(
        stdout.contains("Successful requests:                     7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 × HTTP 500 Internal Server Error: injected failure"),
        "{stdout}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&result).expect("result file"))
        .expect("JSON");
    assert_eq!(
        (r["completed"].as_u64(), r["failed"].as_u64()),
        (Some(7), Some(3))
    );
    assert_eq!(r["model_id"], "fake-model");
    assert_eq!(r["max_concurrency"], 2);
    assert_eq!(r["request_rate"], 200.0);
    // Five tokens per request from `usage`, though they came in three events.
    assert_eq!(r["output_lens"], json!([5, 0, 5, 5, 0, 5, 5, 0, 5, 5]));
    assert_eq!(r["total_output_tokens"], 35);
    assert_eq!(r["total_input_tokens"], 7 * 12);
    let itls = r["itls"].as_array().expect("itls");
    for (i, l) in itls.iter().enumerate() {
        let n = l.as_array().map_or(0, Vec::len);
        assert_eq!(n, if i % 3 == 1 { 0 } else { 2 }, "request {i}");
    }
    let errors = r["errors"].as_array().expect("errors");
    assert!(errors[1]
        .as_str()
        .is_some_and(|e| e.contains("injected failure")));
    assert_eq!(errors[0], "");
    // 10 arrivals at 200/s take at least 50 ms; the throughputs divide by the same duration.
    let d = r["duration"].as_f64().expect("duration");
    assert!(d >= 0.05, "{d}");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
    assert!(close(
        r["request_throughput"].as_f64().expect("rt"),
        7.0 / d
    ));
    assert!(close(
        r["output_throughput"].as_f64().expect("ot"),
        35.0 / d
    ));
    assert!(close(
        r["total_token_throughput"].as_f64().expect("tt"),
        (35.0 + 84.0) / d
    ));
    // TPOT: (E2EL − TTFT)/4 per request; 3 ms sleeps between events bound it from below.
    for k in ["ttft", "tpot", "itl", "e2el"] {
        for s in ["mean", "median", "std", "p50", "p99"] {
            assert!(r[format!("{s}_{k}_ms")].is_number(), "{s}_{k}_ms");
        }
    }
    // The client's clock, not the server's sleeps, bounds TPOT exactly: a request's last token
    // arrives before its stream ends, so E2EL − TTFT is at least the sum of its ITLs. (The
    // sleeps alone do not bound it: a first event read late makes the next gap shorter.)
    let (outs, itls) = (
        r["output_lens"].as_array().expect("output_lens"),
        r["itls"].as_array().expect("itls"),
    );
    let per_request: Vec<f64> = outs
        .iter()
        .zip(itls)
        .filter_map(|(n, l)| {
            let n = n.as_u64().filter(|&n| n > 1)?;
            let gaps: f64 = l.as_array()?.iter().filter_map(Value::as_f64).sum();
            Some(gaps / (n - 1) as f64)
        })
        .collect();
    assert_eq!(per_request.len(), 7);
    let floor_ms = 1e3 * per_request.iter().sum::<f64>() / 7.0;
    let tpot = r["mean_tpot_ms"].as_f64().expect("tpot");
    assert!(
        tpot >= floor_ms * (1.0 - 1e-9) && tpot >= 0.5,
        "{tpot} vs {floor_ms}: {r:#}"
    );
    assert!(r["p99_itl_ms"].as_f64().expect("itl") >= 3.0);
    assert!(r["mean_e2el_ms"].as_f64() > r["mean_ttft_ms"].as_f64());
    // At most 2 in flight; 7 × 3 token events within well under a second of each other.
    assert!((1..=2).contains(&r["max_concurrent_requests"].as_u64().expect("peak")));
    let peak = r["max_output_tokens_per_s"].as_f64().expect("peak tokens");
    assert!((1.0..=21.0).contains(&peak), "{peak}");
}

#[test]
fn a_failing_initial_test_stops_the_run_with_the_server_message() {
    let (url, _) = start_server();
    let out = bench(&[
        "--base-url",
        &url,
        "--endpoint",
        "/v1/broken/completions",
        "--model",
        "m",
        "--random-input-len",
        "4",
        "--random-output-len",
        "2",
        "--num-prompts",
        "3",
        "--ready-check-timeout-sec",
        "5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Initial test run failed"), "{stderr}");
    assert!(stderr.contains("broken endpoint"), "{stderr}");
}

#[test]
fn waits_while_the_server_answers_503_loading() {
    let (url, seen) = start_server();
    let out = bench(&[
        "--base-url",
        &url,
        "--endpoint",
        "/v1/loading/completions",
        "--model",
        "m",
        "--random-input-len",
        "4",
        "--random-output-len",
        "2",
        "--num-prompts",
        "1",
        "--ready-check-timeout-sec",
        "20",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two 503s, the initial test, the one request.
    assert_eq!(seen.loading.load(Ordering::SeqCst), 4);
    assert!(
        stdout.contains("Successful requests:                     1"),
        "{stdout}"
    );
}

#[test]
fn burst_arrivals_release_everything_without_a_limit() {
    let (url, seen) = start_server();
    let out = bench(&[
        "--base-url",
        &url,
        "--model",
        "fake-model",
        "--random-input-len",
        "3",
        "--random-output-len",
        "4",
        "--random-range-ratio",
        "0.5",
        "--num-prompts",
        "6",
        "--request-rate",
        "inf",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 7);
    // Without --max-concurrency the successful requests all overlap.
    assert!(seen.max_in_flight.load(Ordering::SeqCst) >= 3);
    for b in seen.bodies.lock().expect("lock").iter() {
        let len = b["prompt"].as_array().map_or(0, Vec::len);
        assert!((1..=5).contains(&len), "{len}");
        assert!((2..=6).contains(&b["max_tokens"].as_u64().unwrap_or(0)));
        assert!(b.get("ignore_eos").is_none());
    }
}

#[test]
fn falls_back_to_text_prompts_when_the_server_refuses_ids() {
    let (url, seen) = start_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ferrum_testkit::preset("tiny_llama").expect("preset");
    ferrum_testkit::write_test_model(dir.path(), &spec).expect("write model");
    let result = dir.path().join("r.json");
    let out = bench(&[
        "--base-url",
        &url,
        "--endpoint",
        "/v1/textonly/completions",
        "--model",
        "m",
        "--tokenizer",
        dir.path().to_str().expect("path"),
        "--random-input-len",
        "10",
        "--random-output-len",
        "3",
        "--num-prompts",
        "3",
        "--result-file",
        result.to_str().expect("path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("refused token-id prompts (HTTP 400 Bad Request: prompt must be a string)"),
        "{stdout}"
    );
    assert!(stdout.contains("Prompts were sent as text."), "{stdout}");
    let bodies = seen.bodies.lock().expect("lock");
    // The refused id prompt, then the initial test and three requests as text.
    assert_eq!(bodies.len(), 5);
    assert!(bodies[0]["prompt"].is_array());
    assert!(bodies[1..]
        .iter()
        .all(|b| b["prompt"].as_str().is_some_and(|t| !t.is_empty())));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&result).expect("result file"))
        .expect("JSON");
    assert_eq!(
        (r["completed"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(r["output_lens"], json!([3, 0, 3]));
    // Without usage.prompt_tokens the length is that of the re-encoded text (plus BOS when the
    // tokenizer adds one): near the asked-for 10.
    for l in r["input_lens"].as_array().expect("input_lens") {
        let l = l.as_u64().expect("len");
        assert!((5..=15).contains(&l), "{l}");
    }
}
