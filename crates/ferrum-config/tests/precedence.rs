//! Command line > environment > config file > defaults, setting by setting.

use std::collections::HashMap;
use std::path::PathBuf;

use ferrum_config::{load_from, ConfigError, ContextLen, SchedulingPolicy, ServeArgs};

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(args: &[&str], vars: &HashMap<String, String>) -> Result<ServeArgs, ConfigError> {
    let argv = std::iter::once("ferrum serve").chain(args.iter().copied());
    load_from(argv, &|name| vars.get(name).cloned())
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

const YAML: &str = "\
model: /models/from-file
port: 9001
max-model-len: 1k
max_num_seqs: 11
served-model-name: [file-a, file-b]
enable-prefix-caching: false
scheduling-policy: priority
api-key: file-key
";

#[test]
fn defaults_when_nothing_is_given() {
    let a = load(&["m"], &env(&[])).expect("parse");
    assert_eq!(a.model_path(), Some("m"));
    assert_eq!(a.server.host, "127.0.0.1");
    assert_eq!(a.server.port, 8000);
    assert_eq!(a.model.max_model_len, None);
    assert!(a.cache.prefix_caching());
    assert!(a.scheduler.chunked_prefill());
    assert_eq!(a.scheduler.queue_bound(), 1024);
    assert_eq!(a.server.shutdown_timeout, 30);
    a.validate().expect("valid");
}

#[test]
fn file_beats_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "c.yaml", YAML);
    let a = load(&["--config", path.to_str().expect("utf8")], &env(&[])).expect("parse");
    assert_eq!(a.model_path(), Some("/models/from-file"));
    assert_eq!(a.server.port, 9001);
    assert_eq!(a.model.max_model_len, Some(ContextLen::Tokens(1000)));
    assert_eq!(a.scheduler.max_num_seqs, 11);
    assert_eq!(a.model.served_model_name, ["file-a", "file-b"]);
    assert!(!a.cache.prefix_caching());
    assert_eq!(a.scheduler.scheduling_policy, SchedulingPolicy::Priority);
    assert_eq!(a.server.api_key, ["file-key"]);
}

#[test]
fn env_beats_file_and_cli_beats_env() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "c.yaml", YAML);
    let p = path.to_str().expect("utf8");
    let vars = env(&[
        ("FERRUM_PORT", "9002"),
        ("MAX_MODEL_LEN", "2K"),
        ("FERRUM_ENABLE_PREFIX_CACHING", "true"),
        ("VLLM_API_KEY", "env-key"),
        ("MODEL_NAME", "/models/from-env"),
    ]);
    let a = load(&["--config", p], &vars).expect("parse");
    assert_eq!(a.server.port, 9002);
    assert_eq!(a.model.max_model_len, Some(ContextLen::Tokens(2048)));
    assert!(a.cache.prefix_caching());
    assert_eq!(a.server.api_key, ["env-key"]);
    assert_eq!(a.model_path(), Some("/models/from-env"));
    // Untouched by env: still from the file.
    assert_eq!(a.scheduler.max_num_seqs, 11);

    let a = load(
        &[
            "/models/from-cli",
            "--config",
            p,
            "--port",
            "9003",
            "--max_model_len",
            "4096",
            "--no-enable-prefix-caching",
            "--api-key",
            "k1",
            "k2",
        ],
        &vars,
    )
    .expect("parse");
    assert_eq!(a.server.port, 9003);
    assert_eq!(a.model.max_model_len, Some(ContextLen::Tokens(4096)));
    assert!(!a.cache.prefix_caching());
    assert_eq!(a.server.api_key, ["k1", "k2"]);
    assert_eq!(a.model_path(), Some("/models/from-cli"));
    assert_eq!(a.model.served_model_name, ["file-a", "file-b"]);
}

#[test]
fn ferrum_variable_beats_its_alias_and_lists_split_on_commas() {
    let vars = env(&[
        ("FERRUM_MAX_MODEL_LEN", "100"),
        ("MAX_MODEL_LEN", "200"),
        ("FERRUM_API_KEY", "a, b"),
        ("VLLM_API_KEY", "c"),
        ("FERRUM_MODEL", "x"),
        ("FERRUM_GPU_MEMORY_UTILIZATION", ""),
        ("GPU_MEMORY_UTILIZATION", "0.5"),
        ("TENSOR_PARALLEL_SIZE", "1"),
    ]);
    let a = load(&[], &vars).expect("parse");
    assert_eq!(a.model.max_model_len, Some(ContextLen::Tokens(100)));
    assert_eq!(a.server.api_key, ["a", "b"]);
    assert_eq!(a.model_path(), Some("x"));
    // An empty FERRUM_ variable counts as unset, so the alias applies.
    assert!((a.cache.gpu_memory_utilization - 0.5).abs() < 1e-6);
}

#[test]
fn json_config_with_underscores_works_like_yaml() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(
        &dir,
        "vllm_config.json",
        r#"{"model": "m", "max_model_len": 8192, "gpu_memory_utilization": 0.8,
            "enable_auto_tool_choice": true, "tool_call_parser": "hermes",
            "reasoning_parser": "qwen3", "host": "0.0.0.0"}"#,
    );
    let a = load(&["--config", path.to_str().expect("utf8")], &env(&[])).expect("parse");
    assert_eq!(a.model.max_model_len, Some(ContextLen::Tokens(8192)));
    assert!(a.server.auto_tool_choice());
    assert_eq!(a.server.host, "0.0.0.0");
    a.validate().expect("valid");
}

#[test]
fn config_path_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "c.yml", "model: m\nport: 7000\n");
    let vars = env(&[("FERRUM_CONFIG", path.to_str().expect("utf8"))]);
    let a = load(&[], &vars).expect("parse");
    assert_eq!(a.server.port, 7000);
}

#[test]
fn unknown_file_keys_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "c.yaml", "model: m\nmax-modle-len: 10\nfoo_bar: 1\n");
    let e = load(&["--config", path.to_str().expect("utf8")], &env(&[])).expect_err("unknown");
    let msg = e.to_string();
    assert!(
        msg.contains("max-modle-len") && msg.contains("foo-bar"),
        "{msg}"
    );
}

#[test]
fn bad_values_say_where_they_came_from() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "c.yaml", "model: m\nport: not-a-port\n");
    let e = load(&["--config", path.to_str().expect("utf8")], &env(&[])).expect_err("bad");
    assert!(matches!(e, ConfigError::File { .. }), "{e}");

    let e = load(&["m"], &env(&[("FERRUM_PORT", "x")])).expect_err("bad");
    assert!(matches!(e, ConfigError::Env { .. }), "{e}");

    let e = load(&["m"], &env(&[("FERRUM_ENABLE_PREFIX_CACHING", "maybe")])).expect_err("bad");
    assert!(
        e.to_string().contains("FERRUM_ENABLE_PREFIX_CACHING"),
        "{e}"
    );

    let e = load(&["m", "--port", "x"], &env(&[])).expect_err("bad");
    assert!(matches!(e, ConfigError::Cli(_)), "{e}");
}

#[test]
fn validate_names_the_flag_to_change() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["m", "--gpu-memory-utilization", "1.5"],
            "--gpu-memory-utilization",
        ),
        (
            &["m", "--tensor-parallel-size", "2"],
            "--tensor-parallel-size",
        ),
        (&["m", "--block-size", "12"], "--block-size"),
        (
            &["m", "--enable-auto-tool-choice"],
            "--enable-auto-tool-choice",
        ),
        (
            &["m", "--tool-call-parser", "mistral"],
            "--tool-call-parser",
        ),
        (&["m", "--reasoning-parser", "x"], "--reasoning-parser"),
        (&["m", "--host", "example.com"], "--host"),
        (
            &["m", "--generation-config", "/nonexistent"],
            "--generation-config",
        ),
        (&["m", "--log-level", "loud"], "--log-level"),
        (&["m", "--max-num-seqs", "0"], "--max-num-seqs"),
        (&["m", "--dtype", "int3"], "--dtype"),
    ];
    for (args, flag) in cases {
        let a = load(args, &env(&[])).expect("parse");
        let e = a.validate().expect_err("invalid");
        assert!(e.to_string().starts_with(flag), "{args:?}: {e}");
    }
    let a = load(&[], &env(&[])).expect("parse");
    assert!(matches!(a.validate(), Err(ConfigError::NoModel)));
}

#[test]
fn vllm_spellings_are_accepted() {
    let a = load(
        &[
            "--model",
            "m",
            "--max-model-len",
            "32k",
            "--uvicorn-log-level",
            "warning",
            "--trust-remote-code",
            "--enable-prefix-caching",
            "--max-model-len=-1",
        ],
        &env(&[]),
    )
    .expect("parse");
    assert_eq!(a.model.max_model_len, Some(ContextLen::Auto));
    assert_eq!(a.logging.log_level, "warning");
    assert_eq!(a.compat.ignored(), ["--trust-remote-code"]);
    a.validate().expect("valid");
}

#[test]
fn chat_template_is_a_file_or_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "t.jinja", "{{ messages[0].content }}");
    let a = load(
        &["m", "--chat-template", path.to_str().expect("utf8")],
        &env(&[]),
    )
    .expect("parse");
    assert_eq!(
        a.chat_template_source().expect("read").as_deref(),
        Some("{{ messages[0].content }}")
    );
    let a = load(
        &[
            "m",
            "--chat-template",
            "{% for m in messages %}{{m.content}}{% endfor %}",
        ],
        &env(&[]),
    )
    .expect("parse");
    assert!(a.chat_template_source().expect("inline").is_some());
    let a = load(&["m", "--chat-template", "/no/such/file.jinja"], &env(&[])).expect("parse");
    assert!(a.chat_template_source().is_err());
}

/// Async scheduling is left to the engine (on where the device samples, as in vLLM) unless a
/// flag, the environment or the file says otherwise; `--no-async-scheduling` turns it off.
#[test]
fn async_scheduling_is_the_engine_default_unless_given() {
    assert_eq!(
        load(&["m"], &env(&[]))
            .expect("parse")
            .scheduler
            .async_scheduling(),
        None
    );
    let on = load(&["m", "--async-scheduling"], &env(&[])).expect("parse");
    assert_eq!(on.scheduler.async_scheduling(), Some(true));
    let off = load(&["m", "--no-async-scheduling"], &env(&[])).expect("parse");
    assert_eq!(off.scheduler.async_scheduling(), Some(false));
    let dir = tempfile::tempdir().expect("tmp");
    let path = file(&dir, "c.yaml", "async-scheduling: false\n");
    let p = path.to_str().expect("utf8");
    let from_file = load(&["m", "--config", p], &env(&[])).expect("parse");
    assert_eq!(from_file.scheduler.async_scheduling(), Some(false));
    let from_env = load(
        &["m", "--config", p],
        &env(&[("FERRUM_ASYNC_SCHEDULING", "true")]),
    )
    .expect("parse");
    assert_eq!(from_env.scheduler.async_scheduling(), Some(true));
}
