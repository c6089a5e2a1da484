//! The template sandbox: typed failures, budgets, no file access, and the Jinja2 extensions real
//! templates use.

use ferrum_tokenizer::{ChatTemplate, ChatTemplateInput, TemplateLimits, TokenizerError};
use serde_json::json;

fn render(source: &str, messages: serde_json::Value) -> Result<String, TokenizerError> {
    ChatTemplate::new(source, Some("<s>".into()), Some("</s>".into()))?
        .render(&ChatTemplateInput::new(&messages))
}

fn user(text: &str) -> serde_json::Value {
    json!([{"role": "user", "content": text}])
}

#[test]
fn syntax_errors_are_reported_at_construction() {
    let err = ChatTemplate::new("{% for m in messages %}", None, None).expect_err("unclosed for");
    assert!(matches!(err, TokenizerError::TemplateSyntax(_)), "{err:?}");
}

#[test]
fn raise_exception_carries_the_templates_message() {
    let err =
        render("{{ raise_exception('no system role, please') }}", user("x")).expect_err("raises");
    match err {
        TokenizerError::TemplateRaised(message) => assert_eq!(message, "no system role, please"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn runaway_loops_exhaust_their_fuel() {
    let template = ChatTemplate::with_limits(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        None,
        None,
        TemplateLimits {
            fuel: 100_000,
            ..TemplateLimits::default()
        },
    )
    .expect("compiles");
    let messages = user("x");
    let err = template
        .render(&ChatTemplateInput::new(&messages))
        .expect_err("runs out");
    assert!(
        matches!(err, TokenizerError::TemplateFuelExhausted),
        "{err:?}"
    );
}

#[test]
fn output_is_capped() {
    let template = ChatTemplate::with_limits(
        "{% for i in range(1000) %}0123456789{% endfor %}",
        None,
        None,
        TemplateLimits {
            max_output_bytes: 1000,
            ..TemplateLimits::default()
        },
    )
    .expect("compiles");
    let messages = user("x");
    let err = template
        .render(&ChatTemplateInput::new(&messages))
        .expect_err("too long");
    assert!(
        matches!(err, TokenizerError::TemplateOutputTooLarge { limit: 1000 }),
        "{err:?}"
    );
}

#[test]
fn templates_cannot_include_files() {
    let err = render("{% include '/etc/passwd' %}", user("x")).expect_err("no loader");
    assert!(matches!(err, TokenizerError::TemplateRender(_)), "{err:?}");
}

#[test]
fn generation_blocks_render_their_content() {
    let source =
        "{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}";
    assert_eq!(render(source, user("hi")).expect("renders"), "[hi]");
}

#[test]
fn strftime_now_formats_the_current_date() {
    let out = render("{{ strftime_now('%Y-%m-%d') }}", user("x")).expect("renders");
    assert_eq!(out.len(), 10, "{out}");
    assert!(out.starts_with("20"), "{out}");
}

#[test]
fn special_tokens_and_extra_variables_are_visible() {
    let template = ChatTemplate::new(
        "{{ bos_token }}{{ messages[0].content }}{% if enable_thinking is false %}/no_think{% endif %}{{ eos_token }}",
        Some("<s>".into()),
        Some("</s>".into()),
    )
    .expect("compiles");
    let messages = user("q");
    let extra = json!({"enable_thinking": false});
    let input = ChatTemplateInput {
        extra: extra.as_object(),
        ..ChatTemplateInput::new(&messages)
    };
    assert_eq!(
        template.render(&input).expect("renders"),
        "<s>q/no_think</s>"
    );
}

#[test]
fn malformed_messages_are_input_errors() {
    let err = render("{{ messages }}", json!({"role": "user"})).expect_err("not a list");
    assert!(matches!(err, TokenizerError::TemplateInput(_)), "{err:?}");
}
