//! Several models: `--model` given more than once, and `models:` in the --config file.

use std::collections::HashMap;

use ferrum_config::{load_from, ConfigError, ContextLen, Device, ServeArgs};

fn load(args: &[&str], vars: &HashMap<String, String>) -> Result<ServeArgs, ConfigError> {
    let argv = std::iter::once("ferrum serve").chain(args.iter().copied());
    load_from(argv, &|name| vars.get(name).cloned())
}

fn config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("models.yaml");
    std::fs::write(&path, text).expect("write");
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

const MODELS: &str = "\
port: 9000
max-model-len: 2k
max-num-seqs: 32
models:
  - model: /models/qwen3
    served-model-name: [qwen, qwen3-4b]
    max_model_len: 8k
    kv-cache-memory-bytes: 1G
    max-num-seqs: 4
  - /models/SmolLM2.gguf
";

#[test]
fn models_list_gives_each_model_its_settings_over_the_globals() {
    let (_d, p) = config(MODELS);
    let a = load(&["--config", &p], &HashMap::new()).expect("parse");
    a.validate().expect("valid");
    assert_eq!(a.server.port, 9000);
    let specs = a.model_specs().expect("specs");
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].served_model_name, ["qwen", "qwen3-4b"]);
    assert_eq!(specs[0].max_model_len, Some(ContextLen::Tokens(8000)));
    assert_eq!(specs[0].max_num_seqs, 4);
    assert_eq!(specs[0].kv_cache_memory_bytes, Some(1 << 30));
    // The second entry takes the global values and its default names.
    assert_eq!(
        specs[1].served_model_name,
        ["/models/SmolLM2.gguf", "SmolLM2"]
    );
    assert_eq!(specs[1].max_model_len, Some(ContextLen::Tokens(2000)));
    assert_eq!(specs[1].max_num_seqs, 32);
    assert_eq!(specs[1].device, Device::Auto);
    let split = a.memory_split(&specs, 2 << 30).expect("split");
    assert_eq!(split[0].kv_cache_memory_bytes, 1 << 30);
    assert_eq!(split[1].kv_cache_memory_bytes, 1 << 30);
}

#[test]
fn unknown_entry_keys_are_named_with_the_entry() {
    let (_d, p) = config(
        "models:\n  - model: a\n  - model: b\n    tensor-parallel-size: 2\n    colour: red\n",
    );
    let e = load(&["--config", &p], &HashMap::new()).expect_err("unknown");
    let m = e.to_string();
    assert!(
        m.contains(
            "models[1]: unknown key(s) colour, tensor-parallel-size; a model entry takes model,"
        ),
        "{m}"
    );
}

#[test]
fn model_and_models_together_are_refused() {
    let (_d, p) = config("model: a\nmodels: [b, c]\n");
    let e = load(&["--config", &p], &HashMap::new()).expect_err("both");
    assert!(e.to_string().contains("either model"), "{e}");
}

#[test]
fn a_model_on_the_command_line_or_in_the_environment_replaces_the_list() {
    let (_d, p) = config(MODELS);
    let a = load(&["/cli/model", "--config", &p], &HashMap::new()).expect("parse");
    assert_eq!(a.model_specs().expect("specs").len(), 1);
    assert_eq!(a.model_path(), Some("/cli/model"));
    let vars: HashMap<String, String> =
        [("MODEL_NAME".to_string(), "/env/model".to_string())].into();
    let a = load(&["--config", &p], &vars).expect("parse");
    let specs = a.model_specs().expect("specs");
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].model, "/env/model");
}

#[test]
fn model_flag_given_twice_serves_both() {
    let a = load(
        &["first", "--model", "/m/second", "--model", "/m/third"],
        &HashMap::new(),
    )
    .expect("parse");
    a.validate().expect("valid");
    let specs = a.model_specs().expect("specs");
    let models: Vec<&str> = specs.iter().map(|s| s.model.as_str()).collect();
    assert_eq!(models, ["first", "/m/second", "/m/third"]);
    assert_eq!(specs[1].served_model_name, ["/m/second", "second"]);
    assert_eq!(a.model_path(), Some("first"));
}

#[test]
fn names_must_route_to_one_model() {
    let e = load(
        &["--model", "a", "--model", "b", "--served-model-name", "x"],
        &HashMap::new(),
    )
    .expect("parse")
    .validate()
    .expect_err("ambiguous");
    assert!(
        e.to_string().starts_with("--served-model-name: 2 models"),
        "{e}"
    );

    let (_d, p) = config("models:\n  - {model: a, served-model-name: x}\n  - {model: b, served-model-name: [y, x]}\n");
    let e = load(&["--config", &p], &HashMap::new())
        .expect("parse")
        .validate()
        .expect_err("duplicate");
    assert!(e.to_string().contains("\"x\" is also a name of a"), "{e}");
}

#[test]
fn per_model_values_are_checked_and_name_the_model() {
    let (_d, p) = config("models:\n  - {model: a, gpu-memory-utilization: 1.5}\n  - b\n");
    let e = load(&["--config", &p], &HashMap::new())
        .expect("parse")
        .validate()
        .expect_err("range");
    assert!(
        e.to_string().starts_with("model a: gpu-memory-utilization"),
        "{e}"
    );
}

#[test]
fn over_budget_split_is_refused() {
    let (_d, p) = config("kv-cache-memory-bytes: 1G\nmodels:\n  - {model: a, kv-cache-memory-bytes: 768M}\n  - {model: b, kv-cache-memory-bytes: 512M}\n");
    let a = load(&["--config", &p], &HashMap::new()).expect("parse");
    let specs = a.model_specs().expect("specs");
    let e = a.memory_split(&specs, 2 << 30).expect_err("over");
    let m = e.to_string();
    assert!(m.contains("1.25 GiB (a 768.0 MiB + b 512.0 MiB)"), "{m}");
    assert!(m.contains("1.00 GiB (--kv-cache-memory-bytes)"), "{m}");
}
