//! The routes against a scripted fake engine: shapes, streaming, parsers, auth, load, faults.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{assert_error_shape, TestApp, MODEL};
use serde_json::{json, Value};

fn chat(content: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}], "temperature": 0})
}

#[tokio::test]
async fn health_models_version() {
    let app = TestApp::new();
    let (s, body) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = app.get("/v1/models").await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], MODEL);
    assert_eq!(v["data"][0]["max_model_len"], 1024);
    assert_eq!(v["data"][0]["owned_by"], "ferrum");
    assert!(v["data"][0]["created"].as_u64().is_some());
    let (s, _) = app.get("/models").await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app.get("/version").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("version"));
}

#[tokio::test]
async fn loading_server_says_503_but_lists_models() {
    let state = ferrum_server::AppState::new(ferrum_server::ServerOptions::for_model(MODEL));
    let router = ferrum_server::build_router(state);
    use tower::ServiceExt;
    let r = router
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let r = router
        .clone()
        .oneshot(Request::get("/v1/models").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(r.status(), StatusCode::OK);
    let r = router
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(chat("hi").to_string()))
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn chat_whole_response() {
    let app = TestApp::new();
    let (s, v) = app.post("/v1/chat/completions", &chat("hi")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the fake engine."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert!(u["prompt_tokens"].as_u64().unwrap_or(0) > 5);
    assert!(u["completion_tokens"].as_u64().unwrap_or(0) > 3);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(app.engine.running.load(Ordering::SeqCst), 0);
    // Without /v1, and with content parts.
    let body = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
    let (s, v) = app.post("/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn every_token_gets_a_chunk_even_while_its_text_is_held_back() {
    let app = TestApp::new();
    let script_len = app.engine.script.lock().expect("lock").len();
    // "from the fake" is a prefix of the stop string, so its text waits until " engine." breaks
    // the match; the tokens still reach the client one chunk each, as vLLM streams them.
    let body = json!({"prompt": "x", "stream": true, "max_tokens": 64,
                      "stop": ["from the fake robot"],
                      "stream_options": {"include_usage": true}});
    let (s, events) = app.post_stream("/v1/completions", &body).await;
    assert_eq!(s, StatusCode::OK);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("json"))
        .collect();
    let token_chunks: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter(|ch| ch["finish_reason"].is_null())
        .collect();
    assert_eq!(token_chunks.len(), script_len, "{chunks:?}");
    assert!(token_chunks.iter().any(|ch| ch["text"] == ""), "{chunks:?}");
    let text: String = token_chunks
        .iter()
        .filter_map(|ch| ch["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from the fake engine.");

    let mut body = chat("hi");
    body["stream"] = json!(true);
    body["stop"] = json!(["from the fake robot"]);
    let (_, events) = app.post_stream("/v1/chat/completions", &body).await;
    let content: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).expect("json"))
        .skip(1) // the role announcement
        .filter(|c| c["choices"][0]["finish_reason"].is_null())
        .map(|c| c["choices"][0]["delta"]["content"].clone())
        .collect();
    assert_eq!(content.len(), script_len);
    assert!(content.iter().all(Value::is_string), "{content:?}");
}

#[tokio::test]
async fn chat_stream_with_usage() {
    let app = TestApp::new();
    let mut body = chat("hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (s, events) = app.post_stream("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("json"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|ch| ch["delta"]["content"].as_str())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello from the fake engine.");
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0);
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
    assert!(chunks.iter().any(|c| c["choices"]
        .get(0)
        .is_some_and(|ch| ch["finish_reason"] == "stop")));

    // Without include_usage: no usage chunk and no usage key.
    body.as_object_mut().expect("obj").remove("stream_options");
    let (_, events) = app.post_stream("/v1/chat/completions", &body).await;
    for e in &events[..events.len() - 1] {
        let c: Value = serde_json::from_str(e).expect("json");
        assert!(c.get("usage").is_none(), "{c}");
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
}

#[tokio::test]
async fn n_choices_seed_and_logprobs() {
    let app = TestApp::new();
    let mut body = chat("hi");
    body["n"] = json!(3);
    body["seed"] = json!(7);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(2);
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        let lp = &c["logprobs"]["content"];
        assert!(lp.as_array().is_some_and(|a| !a.is_empty()), "{c}");
        assert_eq!(lp[0]["top_logprobs"].as_array().map(Vec::len), Some(2));
    }
    assert_eq!(app.engine.added.load(Ordering::SeqCst), 3);
    let last = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("req");
    assert_eq!(last.sampling.seed, Some(9));
    assert!(last.request_id.ends_with("-2"));
}

#[tokio::test]
async fn stop_string_truncates_and_aborts() {
    let app = TestApp::new();
    app.script("one two three four five six seven");
    *app.engine.delay.lock().expect("lock") = Duration::from_millis(2);
    let mut body = chat("count");
    body["stop"] = json!(["three"]);
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "one two ");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["stop_reason"], "three");
    assert_eq!(
        app.engine.running.load(Ordering::SeqCst),
        0,
        "the engine request was not aborted"
    );
}

#[tokio::test]
async fn max_tokens_gives_length() {
    let app = TestApp::new();
    let mut body = chat("hi");
    body["max_completion_tokens"] = json!(2);
    let (_, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn qwen3_reasoning_is_split() {
    let app =
        TestApp::with(|o| o.reasoning_parser = Some(ferrum_config::ReasoningParserKind::Qwen3));
    app.script("<think>The user greets.</think>Hi there!");
    let (s, v) = app.post("/v1/chat/completions", &chat("hi")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["reasoning_content"], "The user greets.");
    assert_eq!(m["reasoning"], "The user greets.");
    assert_eq!(m["content"], "Hi there!");

    let mut body = chat("hi");
    body["stream"] = json!(true);
    let (_, events) = app.post_stream("/v1/chat/completions", &body).await;
    let (mut reasoning, mut content) = (String::new(), String::new());
    for e in &events[..events.len() - 1] {
        let c: Value = serde_json::from_str(e).expect("json");
        let d = &c["choices"][0]["delta"];
        reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
        content.push_str(d["content"].as_str().unwrap_or(""));
        assert!(
            !d["content"].as_str().unwrap_or("").contains("think>"),
            "{c}"
        );
    }
    assert_eq!(reasoning, "The user greets.");
    assert_eq!(content, "Hi there!");
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[tokio::test]
async fn hermes_tool_calls_whole_in_one_chunk() {
    let app = TestApp::with(|o| {
        o.auto_tool_choice = true;
        o.tool_parser = Some(ferrum_config::ToolParserKind::Hermes);
    });
    app.script("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
    let mut body = chat("weather in Paris?");
    body["tools"] = weather_tools();
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert_eq!(
        c["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(
        c["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert!(c["message"]["tool_calls"][0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("call_")));

    body["stream"] = json!(true);
    let (_, events) = app.post_stream("/v1/chat/completions", &body).await;
    let calls: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).expect("json"))
        .filter(|c| c["choices"][0]["delta"].get("tool_calls").is_some())
        .collect();
    assert_eq!(calls.len(), 1, "{events:?}");
    let tc = &calls[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(tc["index"], 0);
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["arguments"], "{\"city\":\"Paris\"}");
}

#[tokio::test]
async fn streamed_tool_calls_in_separate_chunks_have_distinct_indices() {
    let app = TestApp::with(|o| {
        o.auto_tool_choice = true;
        o.tool_parser = Some(ferrum_config::ToolParserKind::Hermes);
    });
    app.script(concat!(
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n",
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>"
    ));
    let mut body = chat("weather in Paris and Rome?");
    body["tools"] = weather_tools();
    body["stream"] = json!(true);
    let (_, events) = app.post_stream("/v1/chat/completions", &body).await;
    let calls: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).expect("json"))
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
        .flat_map(|tc| tc.as_array().cloned().unwrap_or_default())
        .collect();
    // Clients merge streamed deltas that share an index: the two calls must not share one.
    let indices: Vec<&Value> = calls.iter().map(|c| &c["index"]).collect();
    assert_eq!(indices, [&json!(0), &json!(1)], "{events:?}");
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Rome\"}");
}

#[tokio::test]
async fn tools_without_the_flag_are_refused() {
    let app = TestApp::new();
    let mut body = chat("x");
    body["tools"] = weather_tools();
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(&v);
    body["tool_choice"] = json!("none");
    let (s, _) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn completions_forms() {
    let app = TestApp::new();
    let (s, v) = app
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "Once upon a time"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 16);
    let (s, v) = app
        .post(
            "/v1/completions",
            &json!({"prompt": ["a", "b"], "n": 2, "max_tokens": 3, "logprobs": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(4));
    assert!(v["choices"][3]["logprobs"]["tokens"].is_array());
    let (s, v) = app
        .post(
            "/v1/completions",
            &json!({"prompt": [[1, 2, 3], [4, 5]], "max_tokens": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    let (s, events) = app
        .post_stream(
            "/v1/completions",
            &json!({"prompt": "x", "stream": true, "max_tokens": 4}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for (field, value) in [("echo", json!(true)), ("suffix", json!("tail"))] {
        let mut body = json!({"prompt": "x"});
        body[field] = value;
        let (s, v) = app.post("/v1/completions", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["param"], field);
    }
}

#[tokio::test]
async fn tokenize_and_detokenize() {
    let app = TestApp::new();
    let (s, v) = app
        .post("/tokenize", &json!({"prompt": "hello world"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["max_model_len"], 1024);
    let tokens = v["tokens"].clone();
    assert_eq!(v["count"], tokens.as_array().map(Vec::len).unwrap_or(0));
    let (s, d) = app.post("/detokenize", &json!({"tokens": tokens})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["prompt"], "hello world");
    let (s, v) = app
        .post(
            "/tokenize",
            &json!({"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"enable_thinking": false}, "return_token_strs": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<u32> = serde_json::from_value(v["tokens"].clone()).expect("ids");
    let text = app.tokenizer.decode(&ids, false).expect("decode");
    assert!(text.contains("<think>\n\n</think>"), "{text}");
    assert!(
        text.ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"),
        "{text}"
    );
    let (s, _) = app
        .post("/detokenize", &json!({"tokens": [999999999]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn auth_on_every_route_but_health() {
    let app = TestApp::with(|o| o.api_keys = vec!["sk-test".into()]);
    for path in [
        "/v1/models",
        "/version",
        "/metrics",
        "/nope",
        "//v1/models",
        "/v1/health",
    ] {
        let (s, body) = app.get(path).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_error_shape(&serde_json::from_str(&body).expect("json"));
    }
    let (s, _) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK);
    for (header, ok) in [
        ("Bearer sk-test", true),
        ("bearer sk-test", true),
        ("Bearer sk-tesT", false),
        ("Bearer  sk-test", false),
        ("sk-test", false),
    ] {
        let req = Request::get("/v1/models")
            .header("authorization", header)
            .body(Body::empty())
            .expect("req");
        let (s, headers, _) = app.send(req).await;
        assert_eq!(s == StatusCode::OK, ok, "{header}");
        // A refused request's body is never read: the connection must not be reused.
        let close = headers.get("connection").is_some_and(|v| v == "close");
        assert_eq!(close, !ok, "{header}: connection header");
    }
    let app = TestApp::with(|o| {
        o.api_keys = vec!["k".into()];
        o.metrics_auth = false;
    });
    assert_eq!(app.get("/metrics").await.0, StatusCode::OK);
}

#[tokio::test]
async fn full_queue_is_429_with_retry_after() {
    let app = TestApp::with(|o| o.queue_bound = 1);
    *app.engine.delay.lock().expect("lock") = Duration::from_millis(20);
    let router = app.router.clone();
    let slow = tokio::spawn(async move {
        use tower::ServiceExt;
        let req = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Body::from(chat("hi").to_string()))
            .expect("req");
        let resp = router.oneshot(req).await.expect("resp");
        resp.status()
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(chat("hi").to_string()))
        .expect("req");
    let (s, headers, body) = app.send(req).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(slow.await.expect("join"), StatusCode::OK);
}

#[tokio::test]
async fn metrics_have_vllm_names() {
    let app = TestApp::new();
    app.post("/v1/chat/completions", &chat("hi")).await;
    let (s, text) = app.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    for name in [
        "vllm:num_requests_running{",
        "vllm:num_requests_waiting{",
        "vllm:kv_cache_usage_perc{",
        "vllm:prompt_tokens_total{",
        "vllm:generation_tokens_total{",
        "vllm:request_success_total{engine=\"0\",model_name=\"tiny\",finished_reason=\"stop\"} 1",
        "vllm:num_preemptions_total{",
        "vllm:prefix_cache_queries_total{",
        "vllm:prefix_cache_hits_total{",
        "vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"tiny\"} 1",
        "vllm:inter_token_latency_seconds_bucket{",
        "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"tiny\"} 1",
        "vllm:request_queue_time_seconds_count{",
        "http_requests_total{handler=\"/v1/chat/completions\",method=\"POST\",status=\"2xx\"} 1",
        "http_request_duration_seconds_bucket{",
    ] {
        assert!(text.contains(name), "missing {name}\n{text}");
    }
}

#[tokio::test]
async fn context_length_errors_give_both_numbers() {
    let app = TestApp::new();
    let mut body = chat("hi");
    body["max_tokens"] = json!(10_000);
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("10000") && msg.contains("1024"), "{msg}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let long = "word ".repeat(1500);
    let (s, v) = app.post("/v1/chat/completions", &chat(&long)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn engine_death_fails_in_flight_and_health() {
    let app = TestApp::new();
    app.script(&"tok ".repeat(100));
    *app.engine.delay.lock().expect("lock") = Duration::from_millis(5);
    let mut body = chat("hi");
    body["stream"] = json!(true);
    let engine = app.engine.clone();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = engine.dead.set("injected fault".into());
        // Streams end without a final output, like a dead engine's channels.
        engine.script.lock().expect("lock").clear();
    });
    let (s, _) = app.post_stream("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK);
    killer.await.expect("join");
    let (s, body) = app.get("/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("injected fault"));
    let (s, v) = app.post("/v1/chat/completions", &chat("hi")).await;
    assert!(s.is_server_error(), "{s} {v}");
    assert_error_shape(&v);
}

#[tokio::test]
async fn drain_abort_ends_streams_with_error_and_done() {
    let app = TestApp::with(|o| o.shutdown_timeout = Duration::from_millis(100));
    app.script(&"tok ".repeat(200));
    *app.engine.delay.lock().expect("lock") = Duration::from_millis(5);
    let mut body = chat("hi");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(200);
    let state = app.state.clone();
    let drainer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        ferrum_server::drain(&state).await;
    });
    let (s, events) = app.post_stream("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK);
    drainer.await.expect("join");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let err: Value = serde_json::from_str(&events[events.len() - 2]).expect("json");
    assert_error_shape(&err);
    assert_eq!(app.engine.running.load(Ordering::SeqCst), 0);
    let (s, _) = app.get("/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let (s, _) = app.post("/v1/chat/completions", &chat("hi")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn dropped_response_aborts_the_engine_request() {
    let app = TestApp::new();
    app.script(&"tok ".repeat(500));
    *app.engine.delay.lock().expect("lock") = Duration::from_millis(2);
    let mut body = chat("hi");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(200);
    use tower::ServiceExt;
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("req");
    let resp = app.router.clone().oneshot(req).await.expect("resp");
    let mut stream = resp.into_body().into_data_stream();
    use futures_util::StreamExt;
    for _ in 0..3 {
        stream.next().await;
    }
    assert_eq!(app.engine.running.load(Ordering::SeqCst), 1);
    drop(stream);
    assert_eq!(app.engine.running.load(Ordering::SeqCst), 0);
    let (_, text) = app.get("/metrics").await;
    assert!(text.contains("finished_reason=\"abort\"} 1"), "{text}");
}
