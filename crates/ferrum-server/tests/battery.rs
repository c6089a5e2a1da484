//! A battery of malformed and hostile requests: every one is answered 4xx in OpenAI's error
//! shape within 100 ms, and a canary request gives the same text before and after.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::{assert_error_shape, TestApp, MODEL};
use serde_json::{json, Value};

fn base() -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
}

fn with(field: &str, value: Value) -> Value {
    let mut b = base();
    b[field] = value;
    b
}

fn completion_with(field: &str, value: Value) -> Value {
    let mut b = json!({"model": MODEL, "prompt": "hi"});
    b[field] = value;
    b
}

/// (path, raw body, extra headers): one hostile request.
type Case = (&'static str, String, Vec<(String, String)>);

fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let chat = "/v1/chat/completions";
    let cmpl = "/v1/completions";
    // Not JSON, or not an object.
    for raw in [
        "",
        "{",
        "}",
        "nul",
        "[]",
        "42",
        "\"x\"",
        "true",
        "null",
        "{\"messages\": [}",
        "{'a': 1}",
        "{\"messages\": NaN}",
        "{\"temperature\": 1e999, \"messages\": []}",
        "\u{0}",
        "[{\"role\": \"user\"}]",
    ] {
        out.push((chat, raw.to_string(), vec![]));
        out.push((cmpl, raw.to_string(), vec![]));
    }
    // Deep nesting.
    out.push((
        chat,
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        vec![],
    ));
    out.push((
        chat,
        format!("{{\"messages\": {}{}}}", "[".repeat(1000), "]".repeat(1000)),
        vec![],
    ));
    // Messages.
    for m in [
        json!(null),
        json!([]),
        json!({}),
        json!("hi"),
        json!(5),
        json!([1]),
        json!(["hi"]),
        json!([null]),
        json!([{"content": "x"}]),
        json!([{"role": "wizard", "content": "x"}]),
        json!([{"role": 5, "content": "x"}]),
        json!([{"role": "user"}]),
        json!([{"role": "user", "content": 5}]),
        json!([{"role": "user", "content": {"a": 1}}]),
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]),
        json!([{"role": "user", "content": [{"type": "text"}]}]),
        json!([{"role": "user", "content": [5]}]),
        json!([{"role": "user", "content": [{"text": "x"}]}]),
        json!([{"role": "system"}]),
        json!([{"role": "tool"}]),
        json!([{"role": "assistant", "content": null, "tool_calls": "x"}]),
        json!([{"role": "assistant", "content": null, "tool_calls": [{"function": {}}]}]),
        json!([{"role": "user", "content": "x", "name": 5}]),
    ] {
        out.push((chat, with("messages", m).to_string(), vec![]));
    }
    // Sampling values out of range or of the wrong type.
    let bad_values: Vec<(&str, Vec<Value>)> = vec![
        (
            "temperature",
            vec![
                json!(-1),
                json!(2.0001),
                json!(1e308),
                json!("hot"),
                json!("NaN"),
                json!([1]),
                json!(true),
            ],
        ),
        (
            "top_p",
            vec![json!(0), json!(1.0001), json!(-0.5), json!("x"), json!({})],
        ),
        (
            "top_k",
            vec![json!(-2), json!(1.5), json!("5"), json!(1e12)],
        ),
        ("min_p", vec![json!(-0.1), json!(1.1), json!("x")]),
        (
            "repetition_penalty",
            vec![json!(0), json!(-1), json!(11), json!("x")],
        ),
        (
            "presence_penalty",
            vec![json!(-2.0001), json!(2.0001), json!("x")],
        ),
        ("frequency_penalty", vec![json!(-3), json!(3), json!([])]),
        (
            "max_tokens",
            vec![
                json!(0),
                json!(-1),
                json!(1.5),
                json!("10"),
                json!(1e20),
                json!(100000),
            ],
        ),
        (
            "max_completion_tokens",
            vec![json!(0), json!(-5), json!(5000)],
        ),
        ("min_tokens", vec![json!(-1), json!("x")]),
        (
            "n",
            vec![
                json!(0),
                json!(-1),
                json!(17),
                json!(1000000),
                json!("2"),
                json!(1.5),
            ],
        ),
        ("seed", vec![json!("x"), json!(1.5), json!([1])]),
        (
            "stop",
            vec![
                json!(5),
                json!([1, 2]),
                json!({"a": 1}),
                json!(vec!["s"; 17]),
                json!("x".repeat(2000)),
            ],
        ),
        (
            "stop_token_ids",
            vec![
                json!([-1]),
                json!([999_999_999]),
                json!("x"),
                json!(vec![1; 200]),
                json!([1.5]),
            ],
        ),
        (
            "logit_bias",
            vec![
                json!({"abc": 1}),
                json!({"-1": 1}),
                json!({"999999999": 1}),
                json!({"1": 101}),
                json!({"1": "x"}),
                json!([1]),
            ],
        ),
        ("logprobs", vec![json!("yes"), json!(5)]),
        ("top_logprobs", vec![json!(21), json!(-1), json!(5)]),
        ("stream", vec![json!("yes"), json!(1)]),
        (
            "stream_options",
            vec![json!({"include_usage": true}), json!("x")],
        ),
        (
            "response_format",
            vec![
                json!({"type": "json_object"}),
                json!({"type": "json_schema", "json_schema": {}}),
                json!({"type": "yaml"}),
                json!(5),
            ],
        ),
        (
            "tools",
            vec![
                json!("x"),
                json!([5]),
                json!([{"type": "function"}]),
                json!([{"type": "function", "function": {}}]),
                json!([{"type": "code", "function": {"name": "f"}}]),
                json!([{"function": {"name": "f", "parameters": 5}}]),
            ],
        ),
        (
            "tool_choice",
            vec![
                json!("required"),
                json!({"type": "function", "function": {"name": "f"}}),
                json!(5),
                json!("sometimes"),
            ],
        ),
        ("chat_template", vec![json!("{{ ''.__class__ }}")]),
        ("chat_template_kwargs", vec![json!("x"), json!(5)]),
        ("echo", vec![json!(true)]),
        ("best_of", vec![json!(4)]),
        ("use_beam_search", vec![json!(true)]),
        ("guided_json", vec![json!({"type": "object"})]),
        ("guided_regex", vec![json!("a+")]),
        ("structured_outputs", vec![json!({"json": {}})]),
        ("prompt_logprobs", vec![json!(1)]),
        ("allowed_token_ids", vec![json!([1, 2])]),
        ("bad_words", vec![json!(["x"])]),
        ("priority", vec![json!(1e10), json!("x")]),
        (
            "cache_salt",
            vec![json!(""), json!("s".repeat(300)), json!(5)],
        ),
        ("user", vec![json!(5)]),
        ("continue_final_message", vec![json!(true)]),
        ("model", vec![json!("gpt-4"), json!(5), json!("")]),
    ];
    for (field, values) in bad_values {
        for v in values {
            if field == "model" && v == json!("") {
                continue; // empty means the default model: not an error
            }
            out.push((chat, with(field, v).to_string(), vec![]));
        }
    }
    let mut kwargs = serde_json::Map::new();
    for i in 0..100 {
        kwargs.insert(format!("k{i}"), json!(i));
    }
    out.push((
        chat,
        with("chat_template_kwargs", Value::Object(kwargs)).to_string(),
        vec![],
    ));
    let many_bias: serde_json::Map<String, Value> =
        (0..400).map(|i| (i.to_string(), json!(1))).collect();
    out.push((
        chat,
        with("logit_bias", Value::Object(many_bias)).to_string(),
        vec![],
    ));
    out.push((
        chat,
        with(
            "tools",
            json!(vec![
                json!({"type": "function", "function": {"name": "f"}});
                300
            ]),
        )
        .to_string(),
        vec![],
    ));
    // Completions.
    for (field, v) in [
        ("prompt", json!(null)),
        ("prompt", json!([])),
        ("prompt", json!(5)),
        ("prompt", json!([1, "a"])),
        ("prompt", json!(["a", 1])),
        ("prompt", json!([[1], "a"])),
        ("prompt", json!([-1])),
        ("prompt", json!([999_999_999])),
        ("prompt", json!([[1, 2], [999_999_999]])),
        ("prompt", json!({"text": "x"})),
        ("prompt", json!(vec!["a"; 100])),
        ("prompt", json!([1.5])),
        ("prompt", json!("")),
        ("echo", json!(true)),
        ("suffix", json!("end")),
        ("logprobs", json!(21)),
        ("logprobs", json!(-1)),
        ("max_tokens", json!(0)),
        ("n", json!(99)),
        ("temperature", json!(-0.1)),
        ("best_of", json!(3)),
        ("model", json!("nope")),
    ] {
        out.push((cmpl, completion_with(field, v).to_string(), vec![]));
    }
    // Tokenizer routes.
    for (path, body) in [
        ("/tokenize", json!({})),
        ("/tokenize", json!({"prompt": 5})),
        ("/tokenize", json!({"prompt": "a", "messages": []})),
        ("/tokenize", json!({"messages": []})),
        ("/tokenize", json!({"messages": "x"})),
        ("/tokenize", json!({"model": "x", "prompt": "a"})),
        ("/detokenize", json!({})),
        ("/detokenize", json!({"tokens": [-1]})),
        ("/detokenize", json!({"tokens": "x"})),
        ("/detokenize", json!({"tokens": [999_999_999]})),
    ] {
        out.push((path, body.to_string(), vec![]));
    }
    // Headers and content types.
    let ok = base().to_string();
    let h = |k: &str, v: String| vec![(k.to_string(), v)];
    out.push((chat, ok.clone(), h("content-type", "text/plain".into())));
    out.push((
        chat,
        ok.clone(),
        h("content-type", "application/x-www-form-urlencoded".into()),
    ));
    out.push((chat, ok.clone(), h("x-big", "a".repeat(40_000))));
    out.push((
        chat,
        ok.clone(),
        (0..90)
            .map(|i| (format!("x-h{i}"), "v".repeat(400)))
            .collect(),
    ));
    out.push((
        chat,
        format!(
            "{{\"messages\": [{{\"role\": \"user\", \"content\": \"{}\"}}]}}",
            "a".repeat(9 << 20)
        ),
        vec![],
    ));
    out.push((chat, ok.clone(), h("content-length", "999999999999".into())));
    // Unknown routes and methods.
    out.push(("/v1/chat", ok.clone(), vec![]));
    out.push(("/v2/chat/completions", ok.clone(), vec![]));
    out.push(("/v1/models/../chat/completions", ok, vec![]));
    out
}

async fn canary(app: &TestApp) -> String {
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "canary"}], "temperature": 0, "max_tokens": 64});
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert!(s.is_success(), "{v}");
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn hostile_requests_get_4xx_fast_and_change_nothing() {
    let app = TestApp::new();
    let before = canary(&app).await;
    let cases = cases();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let mut slowest = Duration::ZERO;
    for (i, (path, body, headers)) in cases.iter().enumerate() {
        let mut req = Request::post(*path);
        if !headers.iter().any(|(k, _)| k == "content-type") {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Body::from(body.clone())).expect("request");
        let start = Instant::now();
        let (status, _, text) = app.send(req).await;
        let took = start.elapsed();
        slowest = slowest.max(took);
        let shown: String = body.chars().take(120).collect();
        assert!(
            status.is_client_error(),
            "case {i} {path} {shown}: {status} {text}"
        );
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {i}: not JSON: {text}"));
        assert_error_shape(&v);
        assert!(
            took < Duration::from_millis(100),
            "case {i} {path} {shown} took {took:?}"
        );
    }
    assert_eq!(canary(&app).await, before);
    assert_eq!(
        app.engine.running.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    eprintln!("{} hostile requests, slowest {slowest:?}", cases.len());
}
