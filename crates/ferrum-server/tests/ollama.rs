//! Ollama's API (`/api/*`, `/`) against the scripted fake engine: response shapes, NDJSON
//! framing, the options mapping onto sampling parameters, thinking and tool calls, names with
//! tags, and errors as `{"error": "…"}` with Ollama's statuses (also mid-stream).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestApp, MODEL};
use serde_json::{json, Value};

const SCRIPT: &str = "Hello from the fake engine.";

/// Posts `body` and splits an NDJSON answer into its objects (each line must be JSON).
async fn post_lines(app: &TestApp, path: &str, body: &Value) -> (StatusCode, String, Vec<Value>) {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let (status, headers, text) = app.send(req).await;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "unterminated last line: {text:?}"
    );
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?} is not JSON: {e}")))
        .collect();
    (status, ct, lines)
}

/// Asserts Ollama's error shape and returns the message.
fn error_message(v: &Value) -> String {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(obj.len(), 1, "{v}");
    obj["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error is not a string: {v}"))
        .to_string()
}

fn assert_final(v: &Value, reason: &str) {
    assert_eq!(v["done"], true, "{v}");
    assert_eq!(v["done_reason"], reason, "{v}");
    for key in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(
            v[key].is_u64(),
            "{key} is not a non-negative integer in {v}"
        );
    }
    let created = v["created_at"].as_str().expect("created_at");
    assert!(created.ends_with('Z') && created.len() == 30, "{created}");
    assert!(v["total_duration"].as_u64() >= v["prompt_eval_duration"].as_u64());
}

#[tokio::test]
async fn generate_whole_has_text_counts_and_timings() {
    let app = TestApp::new();
    let (s, v) = app
        .post(
            "/api/generate",
            &json!({"model": MODEL, "prompt": "Say hi", "stream": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["response"], SCRIPT);
    assert_final(&v, "stop");
    let req = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("request");
    assert_eq!(v["prompt_eval_count"], req.prompt_token_ids.len());
    // The script's tokens and the end-of-sequence token.
    let script_len = app.tokenizer.encode(SCRIPT, false).expect("encode").len();
    assert_eq!(v["eval_count"], script_len + 1);
    // Not raw: the prompt went through the chat template as the user's turn.
    let prompt = app
        .tokenizer
        .decode(&req.prompt_token_ids, false)
        .expect("decode");
    assert!(prompt.contains("<|im_start|>user\nSay hi"), "{prompt}");
}

#[tokio::test]
async fn generate_streams_ndjson_ending_with_the_final_object() {
    let app = TestApp::new();
    let (s, ct, lines) = post_lines(
        &app,
        "/api/generate",
        &json!({"model": MODEL, "prompt": "hi"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/x-ndjson");
    assert!(lines.len() > 2, "{lines:?}");
    let (last, chunks) = lines.split_last().expect("lines");
    let mut text = String::new();
    for c in chunks {
        assert_eq!(c["done"], false, "{c}");
        assert_eq!(c["model"], MODEL);
        text.push_str(c["response"].as_str().expect("response"));
    }
    assert_eq!(text, SCRIPT);
    assert_final(last, "stop");
    assert_eq!(last["response"], "");
}

#[tokio::test]
async fn generate_raw_and_system() {
    let app = TestApp::new();
    let (s, v) = app
        .post(
            "/api/generate",
            &json!({"model": MODEL, "prompt": "The sky is", "raw": true, "stream": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let req = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("request");
    assert_eq!(
        req.prompt_token_ids,
        app.tokenizer.encode("The sky is", true).expect("encode")
    );

    let (s, _) = app
        .post(
            "/api/generate",
            &json!({"model": MODEL, "prompt": "hi", "system": "Be brief.", "stream": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let req = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("request");
    let prompt = app
        .tokenizer
        .decode(&req.prompt_token_ids, false)
        .expect("decode");
    assert!(prompt.contains("<|im_start|>system\nBe brief."), "{prompt}");
    assert!(
        prompt.find("Be brief.") < prompt.find("<|im_start|>user\nhi"),
        "{prompt}"
    );
}

#[tokio::test]
async fn chat_whole_and_streamed() {
    let app = TestApp::new();
    let body =
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": false});
    let (s, v) = app.post("/api/chat", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["message"]["role"], "assistant");
    assert_eq!(v["message"]["content"], SCRIPT);
    assert!(v.get("response").is_none(), "{v}");
    assert_final(&v, "stop");

    let mut body = body;
    body.as_object_mut().expect("object").remove("stream");
    let (s, ct, lines) = post_lines(&app, "/api/chat", &body).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/x-ndjson"));
    let (last, chunks) = lines.split_last().expect("lines");
    let text: String = chunks
        .iter()
        .map(|c| {
            assert_eq!(c["message"]["role"], "assistant");
            c["message"]["content"]
                .as_str()
                .expect("content")
                .to_string()
        })
        .collect();
    assert_eq!(text, SCRIPT);
    assert_final(last, "stop");
    assert_eq!(last["message"]["content"], "");
}

#[tokio::test]
async fn options_map_onto_sampling_parameters() {
    let app = TestApp::new();
    let body = json!({"model": MODEL, "prompt": "hi", "stream": false, "options": {
        "temperature": 0.25, "top_p": 0.5, "top_k": 7, "min_p": 0.05, "seed": 42, "num_predict": 3,
        "repeat_penalty": 1.3, "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "num_ctx": 1024, "num_gpu": 1, "not_an_option": "x"}});
    let (s, v) = app.post("/api/generate", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let p = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("request")
        .sampling;
    assert_eq!(
        (
            p.temperature,
            p.top_p,
            p.top_k,
            p.min_p,
            p.seed,
            p.max_tokens
        ),
        (0.25, 0.5, 7, 0.05, Some(42), 3)
    );
    assert_eq!(
        (
            p.repetition_penalty,
            p.presence_penalty,
            p.frequency_penalty
        ),
        (1.3, 0.5, -0.5)
    );
    assert_final(&v, "length");
    assert_eq!(v["eval_count"], 3);

    // A stop string ends the text before it.
    let (_, v) = app
        .post("/api/generate", &json!({"model": MODEL, "prompt": "hi", "stream": false, "options": {"stop": ["fake"]}}))
        .await;
    assert_eq!(v["response"], "Hello from the ");
    assert_final(&v, "stop");

    // num_predict -1 and seed -1 are Ollama's "unbounded" and "random".
    let (s, _) = app
        .post("/api/generate", &json!({"model": MODEL, "prompt": "hi", "stream": false, "options": {"num_predict": -1, "seed": -1}}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let p = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("request")
        .sampling;
    assert_eq!(p.seed, None);
    assert!(p.max_tokens > 900, "{}", p.max_tokens);
}

#[tokio::test]
async fn bad_options_and_refused_fields_are_400_in_ollama_shape() {
    let app = TestApp::new();
    let cases = [
        (json!({"options": {"num_ctx": 4096}}), "--max-model-len"),
        (json!({"options": {"temperature": 5}}), "temperature"),
        (json!({"options": {"num_predict": 0}}), "num_predict"),
        (json!({"options": {"top_p": "high"}}), "top_p"),
        (json!({"format": "json"}), "structured output"),
        (json!({"format": {"type": "object"}}), "structured output"),
        (json!({"think": true}), "does not support thinking"),
        (json!({"template": "{{ .Prompt }}"}), "template"),
        (json!({"suffix": "end"}), "suffix"),
        (json!({"context": [1, 2]}), "context"),
        (json!({"images": ["aGk="]}), "images"),
    ];
    for (extra, needle) in cases {
        let mut body = json!({"model": MODEL, "prompt": "hi"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (s, v) = app.post("/api/generate", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
        let m = error_message(&v);
        assert!(m.contains(needle), "{body}: {m}");
    }
    assert_eq!(
        app.engine.added.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn model_names_with_tags_and_unknown_models() {
    let app = TestApp::new();
    for name in [MODEL.to_string(), format!("{MODEL}:latest")] {
        let (s, v) = app
            .post(
                "/api/generate",
                &json!({"model": name, "prompt": "hi", "stream": false}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["model"], name.as_str());
    }
    for path in ["/api/generate", "/api/chat", "/api/show"] {
        let (s, v) = app
            .post(path, &json!({"model": "nope", "prompt": "hi", "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        let m = error_message(&v);
        assert!(
            m.starts_with("model 'nope' not found") && m.contains("tiny:latest"),
            "{m}"
        );
    }
    let (s, v) = app.post("/api/chat", &json!({"messages": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_message(&v), "model is required");
    let (s, _) = app
        .post("/api/generate", &json!({"model": "tiny:7b", "prompt": "x"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn empty_requests_load_and_unload_is_refused() {
    let app = TestApp::new();
    let (s, v) = app.post("/api/generate", &json!({"model": MODEL})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["done"].clone(), v["done_reason"].clone()),
        (json!(true), json!("load"))
    );
    let (s, v) = app
        .post("/api/chat", &json!({"model": MODEL, "messages": []}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["done_reason"], "load");
    assert_eq!(v["message"]["role"], "assistant");
    let (s, v) = app
        .post("/api/generate", &json!({"model": MODEL, "keep_alive": 0}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_message(&v).contains("--keep-alive"));
    assert_eq!(
        app.engine.added.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn thinking_goes_to_message_thinking() {
    let app =
        TestApp::with(|o| o.reasoning_parser = Some(ferrum_config::ReasoningParserKind::Qwen3));
    app.script("<think>The user greets.</think>Hi there!");
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "think": true, "stream": false});
    let (s, v) = app.post("/api/chat", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["message"]["thinking"], "The user greets.");
    assert_eq!(v["message"]["content"], "Hi there!");

    let mut body = body;
    body["stream"] = json!(true);
    let (_, _, lines) = post_lines(&app, "/api/chat", &body).await;
    let (mut thinking, mut content) = (String::new(), String::new());
    for c in &lines {
        thinking.push_str(c["message"]["thinking"].as_str().unwrap_or(""));
        content.push_str(c["message"]["content"].as_str().unwrap_or(""));
    }
    assert_eq!(
        (thinking.as_str(), content.as_str()),
        ("The user greets.", "Hi there!")
    );

    let (s, v) = app
        .post(
            "/api/generate",
            &json!({"model": MODEL, "prompt": "hi", "think": true, "stream": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["thinking"].clone(), v["response"].clone()),
        (json!("The user greets."), json!("Hi there!"))
    );
}

#[tokio::test]
async fn tool_calls_arrive_whole_with_object_arguments() {
    let app = TestApp::with(|o| {
        o.auto_tool_choice = true;
        o.tool_parser = Some(ferrum_config::ToolParserKind::Hermes);
    });
    app.script("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "weather?"}], "tools": tools});
    let (s, _, lines) = post_lines(&app, "/api/chat", &body).await;
    assert_eq!(s, StatusCode::OK);
    let calls: Vec<&Value> = lines
        .iter()
        .filter(|c| c["message"].get("tool_calls").is_some())
        .collect();
    assert_eq!(calls.len(), 1, "{lines:?}");
    let call = &calls[0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], json!({"city": "Paris"}));
    assert_eq!(calls[0]["message"]["content"], "");
    assert_final(lines.last().expect("last"), "stop");

    // A follow-up turn with the call and its result (Ollama's message shape) renders.
    let mut body = body;
    body["stream"] = json!(false);
    body["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"}]);
    let (s, v) = app.post("/api/chat", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let req = app
        .engine
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("request");
    let prompt = app
        .tokenizer
        .decode(&req.prompt_token_ids, false)
        .expect("decode");
    assert!(
        prompt.contains("sunny") && prompt.contains("Paris"),
        "{prompt}"
    );

    // Without a tool parser, tools are refused rather than ignored.
    let plain = TestApp::new();
    let (s, v) = plain.post("/api/chat", &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_message(&v).contains("--tool-call-parser"));
}

#[tokio::test]
async fn a_failure_mid_stream_is_the_last_line() {
    let app = TestApp::new();
    *app.engine.delay.lock().expect("lock") = Duration::from_millis(40);
    let dead = app.engine.dead.clone();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(130)).await;
        let _ = dead.set("the GPU fell off".into());
    });
    let (s, _, lines) = post_lines(
        &app,
        "/api/generate",
        &json!({"model": MODEL, "prompt": "hi"}),
    )
    .await;
    killer.await.expect("join");
    assert_eq!(s, StatusCode::OK);
    let (last, chunks) = lines.split_last().expect("lines");
    assert!(!chunks.is_empty(), "{lines:?}");
    assert!(error_message(last).contains("the GPU fell off"), "{last}");
}

#[tokio::test]
async fn listings_show_version_and_liveness() {
    let app = TestApp::new();
    let (s, text) = app.get("/api/tags").await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).expect("json");
    let m = &v["models"][0];
    assert_eq!(
        (m["name"].clone(), m["model"].clone()),
        (json!("tiny:latest"), json!("tiny:latest"))
    );
    assert_eq!(m["digest"].as_str().map(str::len), Some(64));
    assert!(
        m["size"].is_u64() && m["details"]["format"].is_string(),
        "{m}"
    );
    assert!(m["modified_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (s, text) = app.get("/api/ps").await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["models"][0]["name"], "tiny:latest");
    assert_eq!(v["models"][0]["context_length"], 1024);
    assert!(v["models"][0]["expires_at"].is_string());

    let (s, v) = app
        .post("/api/show", &json!({"model": "tiny:latest"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["capabilities"], json!(["completion"]));
    assert_eq!(v["details"]["format"], "safetensors");
    // The test app's model source is a bare name (no folder to read an architecture from).
    assert!(
        v["model_info"]["general.vocab_size"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{v}"
    );
    assert!(
        v["parameters"]
            .as_str()
            .is_some_and(|p| p.contains("temperature")),
        "{v}"
    );
    let (s, _) = app.post("/api/show", &json!({"name": MODEL})).await;
    assert_eq!(s, StatusCode::OK);

    let (s, text) = app.get("/api/version").await;
    assert_eq!(s, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&text).expect("json")["version"].is_string());
    let (s, text) = app.get("/").await;
    assert_eq!((s, text.as_str()), (StatusCode::OK, "Ollama is running"));
    let (s, _, _) = app
        .send(Request::head("/").body(Body::empty()).expect("req"))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn management_endpoints_are_refused_not_faked() {
    let app = TestApp::new();
    for path in [
        "/api/pull",
        "/api/push",
        "/api/create",
        "/api/copy",
        "/api/embed",
        "/api/embeddings",
    ] {
        let (s, v) = app.post(path, &json!({"model": MODEL})).await;
        assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{path}");
        assert!(error_message(&v).contains("not supported"), "{path}: {v}");
    }
    let req = Request::delete("/api/delete")
        .header("content-type", "application/json")
        .body(Body::from(json!({"model": MODEL}).to_string()))
        .expect("req");
    let (s, _, _) = app.send(req).await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn the_api_key_guards_ollama_routes_too() {
    let app = TestApp::with(|o| o.api_keys = vec!["sk-test".into()]);
    let (s, body) = app.get("/api/tags").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Ollama's error shape, which its clients turn into a message.
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["error"].is_string(), "{v}");
    let req = Request::get("/api/tags")
        .header("authorization", "Bearer sk-test")
        .body(Body::empty())
        .expect("req");
    let (s, _, _) = app.send(req).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn curl_style_bodies_are_read_as_json() {
    // Ollama's documentation uses `curl -d '{…}'`, which sends form encoding.
    let app = TestApp::new();
    let req = Request::post("/api/generate")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            json!({"model": MODEL, "prompt": "hi", "stream": false}).to_string(),
        ))
        .expect("request");
    let (s, _, text) = app.send(req).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["response"], SCRIPT);
    let req = Request::post("/api/show")
        .body(Body::from("not json"))
        .expect("request");
    let (s, _, text) = app.send(req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_message(&serde_json::from_str(&text).expect("json")).contains("not valid JSON"));
}

#[tokio::test]
async fn logprobs_per_token() {
    let app = TestApp::new();
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": false,
        "logprobs": true, "top_logprobs": 2});
    let (s, v) = app.post("/api/chat", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let lps = v["logprobs"].as_array().expect("logprobs");
    assert_eq!(lps.len(), v["eval_count"].as_u64().expect("count") as usize);
    assert_eq!(lps[0]["logprob"], -0.5);
    assert_eq!(lps[0]["top_logprobs"].as_array().map(Vec::len), Some(2));
    let (s, v) = app
        .post("/api/chat", &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_message(&v).contains("logprobs"));
}

#[tokio::test]
async fn show_and_tags_read_the_model_folder() {
    let (_engine, context, dir) =
        common::fake_model(&ferrum_testkit::tiny_qwen3(), 512, "from qwen");
    let mut options = ferrum_server::ServerOptions::for_model("unused");
    options.models = vec![ferrum_server::ModelRoute::new(
        vec!["qwen3-tiny".into(), "qwen3-tiny:q8".into()],
        dir.path().to_string_lossy(),
    )];
    let state = ferrum_server::AppState::new(options);
    state.set_ready(context);
    let router = ferrum_server::build_router(state);
    let send = |req: Request<Body>| {
        let router = router.clone();
        async move {
            let resp = tower::ServiceExt::oneshot(router, req)
                .await
                .expect("infallible");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice::<Value>(&bytes).expect("json"),
            )
        }
    };
    let (s, v) = send(
        Request::post("/api/show")
            .body(Body::from(
                json!({"model": "qwen3-tiny:latest"}).to_string(),
            ))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["details"]["family"], "qwen3");
    assert_eq!(v["model_info"]["general.architecture"], "qwen3");
    assert!(
        v["model_info"]["qwen3.context_length"].as_u64().is_some(),
        "{v}"
    );
    assert!(
        v["template"]
            .as_str()
            .is_some_and(|t| t.contains("im_start")),
        "{v}"
    );

    let (s, v) = send(Request::get("/api/tags").body(Body::empty()).expect("req")).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["qwen3-tiny:latest", "qwen3-tiny:q8"]);
    assert!(
        v["models"][0]["size"].as_u64().is_some_and(|n| n > 0),
        "{v}"
    );
    // A tagged served name answers to exactly that tag.
    let (s, _) = send(
        Request::post("/api/show")
            .body(Body::from(json!({"model": "qwen3-tiny:q4"}).to_string()))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn think_false_renders_the_template_without_thinking() {
    let app =
        TestApp::with(|o| o.reasoning_parser = Some(ferrum_config::ReasoningParserKind::Qwen3));
    app.script("Hi there!");
    let prompt_of = |app: &TestApp| {
        let req = app
            .engine
            .last_request
            .lock()
            .expect("lock")
            .clone()
            .expect("request");
        app.tokenizer
            .decode(&req.prompt_token_ids, false)
            .expect("decode")
    };
    for (think, closed) in [
        (json!(false), true),
        (json!(true), false),
        (json!("high"), false),
    ] {
        let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "think": think, "stream": false});
        let (s, v) = app.post("/api/chat", &body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["message"]["content"], "Hi there!");
        assert!(v["message"].get("thinking").is_none(), "{v}");
        let prompt = prompt_of(&app);
        assert_eq!(
            prompt.ends_with("<think>\n\n</think>\n\n"),
            closed,
            "think {think}: {prompt:?}"
        );
    }
    let (s, v) = app
        .post("/api/chat", &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "think": "very"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_message(&v).contains("think"));
}
