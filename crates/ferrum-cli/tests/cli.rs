//! The `ferrum` binary as an operator runs it: `validate` on good and broken model folders,
//! `generate` on the default model and on a random-weight model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrum(args: &[&str]) -> Output {
    ferrum_with_env(args, &[])
}

fn ferrum_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run ferrum")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn default_model() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run scripts/fetch-default-model first");
    p
}

fn tiny_model(preset: &str, dir: &Path) {
    let spec = ferrum_testkit::preset(preset).expect("preset");
    ferrum_testkit::write_test_model(dir, &spec).expect("write model");
}

#[test]
fn validate_accepts_the_default_model() {
    let o = ferrum(&["validate", default_model().to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "LlamaForCausalLM",
        "vocab size:          49152",
        "layers:              30",
        "hidden size:         576",
        "9 query, 3 key/value",
        "context length:      8192",
        "round-trip:          OK",
        "chat template:       OK",
        "result: OK",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
}

#[test]
fn validate_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_qwen3", dir.path());
    let o = ferrum(&["validate", "--json", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("json line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["architecture"], "Qwen3ForCausalLM");
    assert_eq!(v["head_dim"], 32);
    assert_eq!(v["servable"], true);
    assert_eq!(v["round_trip"], true);
}

#[test]
fn validate_names_missing_weights_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_llama", dir.path());
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let o = ferrum(&["validate", dir.path().to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("MISSING") && t.contains("weights"), "{t}");
}

#[test]
fn validate_names_a_missing_config_field() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_qwen2", dir.path());
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("num_hidden_layers");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let o = ferrum(&["validate", dir.path().to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("num_hidden_layers"), "{t}");
}

#[test]
fn validate_refuses_an_unsupported_architecture() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_llama", dir.path());
    let cfg_path = dir.path().join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("LlamaForCausalLM", "GPTNeoXForCausalLM");
    std::fs::write(&cfg_path, cfg).unwrap();
    let o = ferrum(&["validate", dir.path().to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("architectures") && t.contains("GPTNeoXForCausalLM"),
        "{t}"
    );
}

#[test]
fn validate_fails_on_a_missing_path() {
    let o = ferrum(&["validate", "/nonexistent/model"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("does not exist"));
}

#[test]
fn generate_chat_on_the_default_model() {
    let model = default_model();
    // With llama.cpp's summation orders the output is llama.cpp's to the token (its first two
    // candidates here are 0.06 nats apart, closer than the default kernels' rounding noise).
    let o = ferrum_with_env(
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--chat",
            "What is the capital of France?",
            "--temperature",
            "0",
            "--max-tokens",
            "5",
            "--threads",
            "2",
        ],
        &[("FERRUM_CPU_NUMERICS", "llamacpp")],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // llama.cpp's first five greedy tokens for this prompt spell "L'Étoile".
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("L'Étoile"),
        "{t}"
    );
    assert!(t.contains("tokens/s"), "{t}");
}

#[test]
fn generate_is_reproducible_with_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_qwen3", dir.path());
    let run = || {
        let o = ferrum(&[
            "generate",
            "--model",
            dir.path().to_str().unwrap(),
            "--prompt",
            "hello world",
            "--max-tokens",
            "12",
            "--temperature",
            "0.9",
            "--seed",
            "7",
            "--print-token-ids",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.contains("output_token_ids"))
            .expect("token ids")
            .to_string()
    };
    assert_eq!(run(), run());
}

#[test]
fn generate_rejects_a_prompt_longer_than_the_context() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_llama", dir.path());
    let o = ferrum(&[
        "generate",
        "--model",
        dir.path().to_str().unwrap(),
        "--prompt",
        "hi",
        "--max-tokens",
        "100000000",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("exceeds the model's context"), "{t}");
}

#[test]
fn generate_runs_a_prompts_file_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model("tiny_qwen3", &model);
    let file = dir.path().join("prompts.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"hello\", \"max_tokens\": 5}\n\n{\"chat\": \"hi there\", \"max_tokens\": 7}\n{\"prompt\": \"abc\"}\n",
    )
    .unwrap();
    let o = ferrum(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompts-file",
        file.to_str().unwrap(),
        "--max-tokens",
        "3",
        "--temperature",
        "0",
        "--ignore-eos",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{t}");
    let counts: Vec<u64> = lines
        .iter()
        .map(|l| l["completion_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![5, 7, 3]);
    assert!(lines.iter().enumerate().all(|(i, l)| l["index"] == i));

    std::fs::write(&file, "{\"prompt\": \"x\", \"bogus\": 1}\n").unwrap();
    let o = ferrum(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompts-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("prompts.jsonl:1"), "{}", text(&o));
}

#[test]
fn an_unknown_cpu_numerics_value_is_refused_by_name() {
    let model = default_model();
    let o = ferrum_with_env(
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Hi",
            "--max-tokens",
            "1",
            "--threads",
            "1",
        ],
        &[("FERRUM_CPU_NUMERICS", "exact")],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("FERRUM_CPU_NUMERICS=exact"), "{t}");
}

#[test]
fn dtype_names_vllm_types_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model("tiny_qwen3", dir.path());
    let run = |dtype: &str| {
        ferrum(&[
            "generate",
            "--model",
            dir.path().to_str().unwrap(),
            "--device",
            "cpu",
            "--dtype",
            dtype,
            "--prompt",
            "hello world",
            "--max-tokens",
            "4",
            "--temperature",
            "0",
            "--threads",
            "1",
            "--print-token-ids",
        ])
    };
    // The CPU computes in f32 whatever the type, and says so when another was asked for.
    let f32_run = run("float32");
    assert!(f32_run.status.success(), "{}", text(&f32_run));
    assert!(!text(&f32_run).contains("computes in float32"));
    let half = run("half");
    assert!(half.status.success(), "{}", text(&half));
    assert!(
        text(&half).contains("computes in float32"),
        "{}",
        text(&half)
    );
    let ids = |o: &Output| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.contains("output_token_ids"))
            .map(str::to_string)
    };
    assert_eq!(ids(&f32_run), ids(&half));
    let bad = run("fp8");
    assert!(!bad.status.success());
    assert!(text(&bad).contains("fp8"), "{}", text(&bad));
}
