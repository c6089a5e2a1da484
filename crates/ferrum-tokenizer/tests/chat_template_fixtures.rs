//! Chat templates rendered by us against transformers' `apply_chat_template`, byte for byte.
//!
//! The fixture is written by `scripts/fixtures/chat_templates.py` (real Qwen3, Llama 3.1 and
//! SmolLM2 templates plus one exercising Python behaviour).

use std::path::Path;

use ferrum_tokenizer::{ChatTemplate, ChatTemplateInput, TokenizerError};
use serde_json::Value;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates.json");
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn optional_string(case: &Value, key: &str) -> Option<String> {
    case.get(key).and_then(Value::as_str).map(str::to_string)
}

#[test]
fn every_case_renders_like_transformers() {
    let fixture = fixture();
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 15, "fixture has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let source = fixture["templates"][case["template"].as_str().expect("template")]
            .as_str()
            .expect("template source");
        let template = ChatTemplate::new(
            source,
            optional_string(case, "bos_token"),
            optional_string(case, "eos_token"),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let input = ChatTemplateInput {
            messages: &case["messages"],
            tools: case.get("tools").filter(|v| !v.is_null()),
            documents: case.get("documents").filter(|v| !v.is_null()),
            add_generation_prompt: case
                .get("add_generation_prompt")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            extra: case.get("extra").and_then(Value::as_object),
        };
        let rendered = template.render(&input);
        match (case.get("expected").and_then(Value::as_str), rendered) {
            (Some(expected), Ok(got)) if got == expected => {}
            (Some(expected), Ok(got)) => failures.push(format!(
                "{name}: output differs\n--- expected\n{expected}\n--- got\n{got}\n---"
            )),
            (Some(_), Err(e)) => failures.push(format!("{name}: failed: {e}")),
            (None, Err(TokenizerError::TemplateRaised(message))) => {
                let expected = case["expected_error"].as_str().expect("expected_error");
                if message != expected {
                    failures.push(format!("{name}: raised {message:?}, expected {expected:?}"));
                }
            }
            (None, other) => failures.push(format!("{name}: expected a raise, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
