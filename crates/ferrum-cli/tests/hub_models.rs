//! `ferrum` with hub ids: `pull`, `list`, `rm`, and `validate`/`generate` given `org/name`,
//! against a local stand-in for the hub's endpoints (the endpoint shapes and the cache layout
//! are tested in depth in ferrum-hub; this checks the commands end to end).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const COMMIT: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

/// Serves `repos` (id → files) with the hub's metadata and resolve endpoints; etags are opaque
/// (the size is checked, not a hash), as some mirrors send them.
fn start_hub(repos: BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            if r.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let (status, headers, body) = route(&repos, &path);
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = s.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = s.write_all(&body);
            }
        }
    });
    url
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn route(repos: &BTreeMap<String, BTreeMap<String, Vec<u8>>>, path: &str) -> Answer {
    let p = path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_start_matches('/');
    if let Some(rest) = p.strip_prefix("api/models/") {
        let id = rest.split("/revision/").next().unwrap_or_default();
        return match repos.get(id) {
            Some(files) => {
                let siblings: Vec<_> = files
                    .keys()
                    .map(|f| serde_json::json!({ "rfilename": f }))
                    .collect();
                let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings });
                (200, vec![], body.to_string().into_bytes())
            }
            None => (
                401,
                vec![("X-Error-Code".into(), "RepoNotFound".into())],
                vec![],
            ),
        };
    }
    let parts: Vec<&str> = p.splitn(5, '/').collect();
    if let [org, name, "resolve", _, file] = parts.as_slice() {
        if let Some(body) = repos
            .get(&format!("{org}/{name}"))
            .and_then(|r| r.get(*file))
        {
            let etag = format!("\"etag-{}-{}\"", file.replace('.', "-"), body.len());
            return (
                200,
                vec![
                    ("ETag".into(), etag),
                    ("X-Repo-Commit".into(), COMMIT.into()),
                ],
                body.clone(),
            );
        }
    }
    (404, vec![], vec![])
}

fn ferrum(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrum"));
    c.args(args)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("FERRUM_USE_MODELSCOPE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ferrum")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn folder_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

#[test]
fn pull_list_validate_generate_and_rm_a_hub_model() {
    let model = tempfile::tempdir().expect("tempdir");
    let spec = ferrum_testkit::preset("tiny_qwen3").expect("preset");
    ferrum_testkit::write_test_model(model.path(), &spec).expect("write model");
    let mut files = folder_files(model.path());
    files.insert("README.md".into(), b"not needed".to_vec());
    let url = start_hub(BTreeMap::from([("org/tiny".to_string(), files)]));
    let home = tempfile::tempdir().expect("home");
    let hf_home = home.path().join("hf").display().to_string();
    let env = [
        ("HF_ENDPOINT", url.as_str()),
        ("HF_HOME", hf_home.as_str()),
        // llama.cpp's orders, so that the text is llama.cpp's (see cli.rs).
        ("FERRUM_CPU_NUMERICS", "llamacpp"),
    ];

    let o = ferrum(&["pull", "org/tiny"], &env);
    assert!(o.status.success(), "{}", text(&o));
    let snap = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(snap.ends_with(format!("models--org--tiny/snapshots/{COMMIT}")));
    assert!(snap.join("config.json").is_file() && !snap.join("README.md").exists());

    // From here on the cache alone must do.
    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    let o = ferrum(&["validate", "org/tiny"], &offline);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("result: OK"), "{}", text(&o));
    let o = ferrum(
        &[
            "generate",
            "--model",
            "org/tiny",
            "--prompt",
            "hello",
            "--max-tokens",
            "3",
            "--temperature",
            "0",
            "--threads",
            "2",
        ],
        &offline,
    );
    assert!(o.status.success(), "{}", text(&o));

    let o = ferrum(&["list"], &env);
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        listed.contains("org/tiny") && listed.contains("(main)"),
        "{listed}"
    );
    assert!(listed.contains(&snap.display().to_string()), "{listed}");

    let o = ferrum(&["rm", "org/tiny"], &env);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!snap.exists());
    let o = ferrum(&["validate", "org/tiny"], &offline);
    assert!(!o.status.success());
    assert!(text(&o).contains("HF_HUB_OFFLINE"), "{}", text(&o));
}

#[test]
fn a_gguf_from_the_hub_generates_what_the_local_file_does() {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(local.is_file(), "run scripts/fetch-default-model first");
    let gguf = std::fs::read(&local).expect("gguf");
    let url = start_hub(BTreeMap::from([(
        "org/smol-GGUF".to_string(),
        BTreeMap::from([
            ("SmolLM2-135M-Instruct.Q4_1.gguf".to_string(), gguf),
            (
                "SmolLM2-135M-Instruct.Q8_0.gguf".to_string(),
                b"other quant".to_vec(),
            ),
        ]),
    )]));
    let home = tempfile::tempdir().expect("home");
    let hf_home = home.path().join("hf").display().to_string();
    let env = [
        ("HF_ENDPOINT", url.as_str()),
        ("HF_HOME", hf_home.as_str()),
        // llama.cpp's orders, so that the text is llama.cpp's (see cli.rs).
        ("FERRUM_CPU_NUMERICS", "llamacpp"),
    ];
    let run = |model: &str| {
        let o = ferrum(
            &[
                "generate",
                "--model",
                model,
                "--chat",
                "What is the capital of France?",
                "--temperature",
                "0",
                "--max-tokens",
                "5",
                "--threads",
                "2",
            ],
            &env,
        );
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let from_hub = run("org/smol-GGUF:Q4_1");
    assert_eq!(from_hub, run(local.to_str().expect("utf-8 path")));
    assert!(from_hub.starts_with("L'Étoile"), "{from_hub}");
}

#[test]
fn download_dir_replaces_the_cache_folder() {
    let model = tempfile::tempdir().expect("tempdir");
    let spec = ferrum_testkit::preset("tiny_llama").expect("preset");
    ferrum_testkit::write_test_model(model.path(), &spec).expect("write model");
    let url = start_hub(BTreeMap::from([(
        "org/tiny".to_string(),
        folder_files(model.path()),
    )]));
    let home = tempfile::tempdir().expect("home");
    let hf_home = home.path().join("hf").display().to_string();
    let dir = home.path().join("weights");
    let dir_s = dir.display().to_string();
    let env = [
        ("HF_ENDPOINT", url.as_str()),
        ("HF_HOME", hf_home.as_str()),
        // llama.cpp's orders, so that the text is llama.cpp's (see cli.rs).
        ("FERRUM_CPU_NUMERICS", "llamacpp"),
    ];

    let o = ferrum(&["pull", "org/tiny", "--download-dir", &dir_s], &env);
    assert!(o.status.success(), "{}", text(&o));
    let snap = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(snap.starts_with(&dir), "{}", snap.display());
    assert!(dir.join("models--org--tiny").is_dir());

    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    let o = ferrum(
        &["validate", "org/tiny", "--download-dir", &dir_s],
        &offline,
    );
    assert!(o.status.success(), "{}", text(&o));
    // HF_HOME's cache is empty: without the flag the model is not found offline.
    let o = ferrum(&["validate", "org/tiny"], &offline);
    assert!(!o.status.success());
    // `serve` reads the same flag: with the model in HF_HOME's cache but an empty
    // --download-dir it must fail offline naming the cache (a serve that ignored the flag would
    // load the model and keep running).
    let o = ferrum(&["pull", "org/tiny"], &env);
    assert!(o.status.success(), "{}", text(&o));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let empty = home.path().join("empty").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args([
            "serve",
            "org/tiny",
            "--download-dir",
            &empty,
            "--port",
            &port,
        ])
        .envs(offline)
        .env_remove("HF_TOKEN")
        .env_remove("FERRUM_USE_MODELSCOPE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running: --download-dir was not used");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    assert!(!o.status.success());
    assert!(text(&o).contains("HF_HUB_OFFLINE"), "{}", text(&o));
}
