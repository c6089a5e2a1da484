//! Downloads against a local fake of the hub's endpoints (never the real hub): layout,
//! resume, verification, offline mode, mirror, token, redirects, ModelScope, list and rm.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use common::{git_sha1_hex, sha256_hex, FakeHub, Faults, Repo};
use ferrum_hub::{HubConfig, HubError, Progress, RepoRef, Source};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A sharded safetensors model with files a server never needs.
fn sharded_repo() -> Repo {
    let mut files = BTreeMap::new();
    files.insert("config.json".into(), br#"{"model_type":"llama"}"#.to_vec());
    files.insert("tokenizer.json".into(), br#"{"model":{}}"#.to_vec());
    files.insert("README.md".into(), b"# readme".to_vec());
    files.insert("onnx/model.onnx".into(), bytes(5000, 9));
    files.insert(
        "model.safetensors.index.json".into(),
        br#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#.to_vec(),
    );
    files.insert("model-00001-of-00002.safetensors".into(), bytes(300_000, 1));
    files.insert("model-00002-of-00002.safetensors".into(), bytes(200_000, 2));
    Repo {
        commit: COMMIT.into(),
        files,
        lfs: vec![
            "model-00001-of-00002.safetensors".into(),
            "model-00002-of-00002.safetensors".into(),
            "onnx/model.onnx".into(),
        ],
        token: None,
        cdn_on_hub: false,
    }
}

struct Env {
    hub: FakeHub,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let hub = FakeHub::start();
        hub.add("org/model", sharded_repo());
        Self {
            hub,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The configuration `ferrum` would read with these variables set.
    fn cfg(&self, extra: &[(&str, &str)]) -> HubConfig {
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("HOME".into(), self.dir.path().display().to_string());
        vars.insert("HF_ENDPOINT".into(), self.hub.url.clone());
        vars.insert(
            "HF_HOME".into(),
            self.dir.path().join("hf").display().to_string(),
        );
        vars.insert("MODELSCOPE_ENDPOINT".into(), self.hub.url.clone());
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let mut c = HubConfig::from_lookup(|k| vars.get(k).cloned());
        c.retry_delay = std::time::Duration::from_millis(10);
        c
    }

    fn hf_repo(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("hf/hub")
            .join(ferrum_hub::repo_folder_name(id))
    }
}

fn pull(spec: &str, cfg: &HubConfig) -> Result<PathBuf, HubError> {
    ferrum_hub::resolve(spec, None, cfg, Progress::Quiet)
}

fn gets(env: &Env, needle: &str) -> Vec<common::Logged> {
    env.hub
        .log()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.contains(needle))
        .collect()
}

#[test]
fn downloads_only_needed_files_into_the_huggingface_layout() {
    let env = Env::new();
    let cfg = env.cfg(&[]);
    let snap = pull("org/model", &cfg).expect("pull");
    let repo = env.hf_repo("org/model");
    assert_eq!(snap, repo.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).expect("ref"),
        COMMIT
    );
    let src = sharded_repo();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let p = snap.join(f);
        assert_eq!(std::fs::read(&p).expect(f), src.files[f], "{f}");
        // A relative link into blobs, named by the content hash the hub announced.
        let target = std::fs::read_link(&p).expect("a symlink");
        let etag = if src.lfs.iter().any(|l| l == f) {
            sha256_hex(&src.files[f])
        } else {
            git_sha1_hex(&src.files[f])
        };
        assert_eq!(target, Path::new("../../blobs").join(&etag), "{f}");
    }
    for skipped in ["README.md", "onnx/model.onnx"] {
        assert!(!snap.join(skipped).exists(), "{skipped} was downloaded");
        assert!(
            env.hub.log().iter().all(|l| !l.path.ends_with(skipped)),
            "{skipped} was requested"
        );
    }
    let blobs: Vec<_> = std::fs::read_dir(repo.join("blobs"))
        .expect("blobs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(blobs.len(), 5, "{blobs:?}");
    assert!(blobs.iter().all(|b| !b.ends_with(".incomplete")));
    // The large files came from the CDN the hub redirected to.
    assert_eq!(
        env.hub
            .log()
            .iter()
            .filter(|l| l.server == "cdn" && l.method == "GET")
            .count(),
        2
    );

    // A second run finds everything: one metadata call, no file traffic.
    env.hub.clear_log();
    assert_eq!(pull("org/model", &cfg).expect("again"), snap);
    let log = env.hub.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0]
        .path
        .starts_with("/api/models/org/model/revision/main"));

    // Offline, the cache alone answers.
    env.hub.clear_log();
    let offline = env.cfg(&[("HF_HUB_OFFLINE", "1")]);
    assert_eq!(pull("org/model", &offline).expect("offline"), snap);
    assert!(env.hub.log().is_empty());
}

#[test]
fn a_connection_cut_mid_file_resumes_with_a_range() {
    let env = Env::new();
    env.hub.faults(Faults {
        cut_after: Some(70_000),
        corrupt: false,
    });
    let snap = pull("org/model", &env.cfg(&[])).expect("pull");
    let src = sharded_repo();
    let shard = "model-00001-of-00002.safetensors";
    assert_eq!(
        std::fs::read(snap.join(shard)).expect("shard"),
        src.files[shard]
    );
    // Shards download in parallel: three GETs in all, one of them the resumption.
    let ranges: Vec<Option<String>> = env
        .hub
        .log()
        .into_iter()
        .filter(|l| l.server == "cdn")
        .map(|l| l.headers.get("range").cloned())
        .collect();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(
        ranges.iter().flatten().collect::<Vec<_>>(),
        vec!["bytes=70000-"]
    );
}

#[test]
fn a_partial_file_left_by_an_earlier_run_is_resumed() {
    let env = Env::new();
    let src = sharded_repo();
    let shard = &src.files["model-00002-of-00002.safetensors"];
    let sha = sha256_hex(shard);
    let blobs = env.hf_repo("org/model").join("blobs");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    std::fs::write(blobs.join(format!("{sha}.incomplete")), &shard[..12_345]).expect("partial");
    let snap = pull("org/model", &env.cfg(&[])).expect("pull");
    assert_eq!(
        std::fs::read(snap.join("model-00002-of-00002.safetensors")).expect("shard"),
        *shard
    );
    let ranged: Vec<_> = env
        .hub
        .log()
        .into_iter()
        .filter_map(|l| l.headers.get("range").cloned())
        .collect();
    assert_eq!(ranged, vec!["bytes=12345-".to_string()]);
}

#[test]
fn content_that_does_not_match_the_hash_is_refused() {
    let env = Env::new();
    env.hub.faults(Faults {
        cut_after: None,
        corrupt: true,
    });
    let err = pull("org/model", &env.cfg(&[])).expect_err("corrupt");
    assert!(matches!(err, HubError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    let repo = env.hf_repo("org/model");
    let shard = repo
        .join("snapshots")
        .join(COMMIT)
        .join("model-00001-of-00002.safetensors");
    assert!(!shard.exists());
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("blobs"))
        .expect("blobs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".incomplete") || n.len() == 64)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn offline_mode_names_the_missing_files() {
    let env = Env::new();
    let offline = env.cfg(&[("HF_HUB_OFFLINE", "1")]);
    let err = pull("org/model", &offline).expect_err("empty cache");
    let msg = err.to_string();
    assert!(
        msg.contains("HF_HUB_OFFLINE") && msg.contains("ferrum pull org/model"),
        "{msg}"
    );
    assert!(env.hub.log().is_empty(), "offline mode used the network");

    let snap = pull("org/model", &env.cfg(&[])).expect("pull");
    std::fs::remove_file(snap.join("model-00002-of-00002.safetensors")).expect("rm");
    let msg = pull("org/model", &offline)
        .expect_err("partial")
        .to_string();
    assert!(
        msg.contains("missing: model-00002-of-00002.safetensors"),
        "{msg}"
    );
}

#[test]
fn the_token_goes_to_the_hub_only_and_gated_repos_ask_for_it() {
    let env = Env::new();
    let mut gated = sharded_repo();
    gated.token = Some("hf_secret".into());
    env.hub.add("org/gated", gated);
    let msg = pull("org/gated", &env.cfg(&[]))
        .expect_err("no token")
        .to_string();
    assert!(msg.contains("HF_TOKEN") && msg.contains("401"), "{msg}");

    env.hub.clear_log();
    pull("org/gated", &env.cfg(&[("HF_TOKEN", "hf_secret")])).expect("with token");
    let log = env.hub.log();
    assert!(!log.is_empty());
    for l in &log {
        let auth = l.headers.get("authorization").map(String::as_str);
        match l.server {
            "hub" => assert_eq!(auth, Some("Bearer hf_secret"), "{l:?}"),
            _ => assert_eq!(auth, None, "token leaked to the CDN: {l:?}"),
        }
    }
}

#[test]
fn unreachable_hubs_and_unknown_repos_say_what_to_do() {
    let env = Env::new();
    let msg = pull("org/missing", &env.cfg(&[]))
        .expect_err("404")
        .to_string();
    assert!(
        msg.contains("not found") && msg.contains("HF_TOKEN"),
        "{msg}"
    );
    assert!(msg.contains("no local folder or file org/missing"), "{msg}");
    let msg = ferrum_hub::resolve("org/model", Some("v9"), &env.cfg(&[]), Progress::Quiet)
        .expect_err("revision")
        .to_string();
    assert!(msg.contains("revision \"v9\" not found"), "{msg}");
    // A closed port: the mirror and ModelScope are suggested.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let msg = pull("org/model", &env.cfg(&[("HF_ENDPOINT", &url)]))
        .expect_err("down")
        .to_string();
    assert!(msg.contains("HF_ENDPOINT=https://hf-mirror.com"), "{msg}");
    assert!(msg.contains("--model-source modelscope"), "{msg}");
}

#[test]
fn a_gguf_repository_downloads_only_the_named_file() {
    let env = Env::new();
    let mut files = BTreeMap::new();
    files.insert("m-Q4_K_M.gguf".to_string(), bytes(40_000, 4));
    files.insert("m-Q8_0.gguf".to_string(), bytes(80_000, 8));
    files.insert("README.md".to_string(), b"x".to_vec());
    env.hub.add(
        "org/m-GGUF",
        Repo {
            commit: COMMIT.into(),
            lfs: files
                .keys()
                .filter(|f| f.ends_with(".gguf"))
                .cloned()
                .collect(),
            files,
            token: None,
            cdn_on_hub: false,
        },
    );
    let cfg = env.cfg(&[]);
    let msg = pull("org/m-GGUF", &cfg).expect_err("ambiguous").to_string();
    assert!(msg.contains("org/m-GGUF:m-Q8_0.gguf"), "{msg}");
    let p = pull("org/m-GGUF:Q4_K_M", &cfg).expect("by tag");
    assert_eq!(
        p.file_name().and_then(|n| n.to_str()),
        Some("m-Q4_K_M.gguf")
    );
    assert_eq!(std::fs::read(&p).expect("gguf").len(), 40_000);
    assert!(gets(&env, "Q8_0").is_empty());
    // Offline, the same spec finds the cached file.
    let offline = env.cfg(&[("HF_HUB_OFFLINE", "1")]);
    assert_eq!(
        pull("org/m-GGUF:m-Q4_K_M.gguf", &offline).expect("cached"),
        p
    );
}

#[test]
fn modelscope_uses_its_own_api_and_cache_folder() {
    let env = Env::new();
    let mut repo = sharded_repo();
    repo.files
        .insert("generation_config.json".into(), b"{}".to_vec());
    env.hub.add("Qwen/Qwen2.5-0.5B", repo.clone());
    env.hub.faults(Faults {
        cut_after: Some(1000),
        corrupt: false,
    });
    let cfg = env.cfg(&[
        ("FERRUM_USE_MODELSCOPE", "true"),
        (
            "MODELSCOPE_CACHE",
            &env.dir.path().join("ms").display().to_string(),
        ),
    ]);
    assert_eq!(cfg.source, Source::ModelScope);
    let dir = pull("Qwen/Qwen2.5-0.5B", &cfg).expect("pull");
    assert_eq!(dir, env.dir.path().join("ms/models/Qwen/Qwen2___5-0___5B"));
    for f in [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        assert_eq!(std::fs::read(dir.join(f)).expect(f), repo.files[f], "{f}");
    }
    assert!(!dir.join("README.md").exists());
    let log = env.hub.log();
    assert!(log
        .iter()
        .any(|l| l.path == "/api/v1/models/Qwen/Qwen2.5-0.5B/repo/files"));
    // The cut transfer was resumed.
    assert!(log
        .iter()
        .any(|l| l.headers.get("range").map(String::as_str) == Some("bytes=1000-")));
    assert!(log.iter().all(|l| !l.path.contains("/api/models/")));

    // Corrupted bytes are refused here too.
    let other = env.cfg(&[
        ("FERRUM_USE_MODELSCOPE", "1"),
        (
            "MODELSCOPE_CACHE",
            &env.dir.path().join("ms2").display().to_string(),
        ),
    ]);
    env.hub.faults(Faults {
        cut_after: None,
        corrupt: true,
    });
    let err = pull("Qwen/Qwen2.5-0.5B", &other).expect_err("corrupt");
    assert!(matches!(err, HubError::HashMismatch { .. }), "{err}");
}

#[test]
fn list_and_remove_manage_the_store() {
    let env = Env::new();
    let cfg = env.cfg(&[]);
    let snap = pull("org/model", &cfg).expect("pull");
    let listed = ferrum_hub::list(&cfg);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let m = &listed[0];
    assert_eq!(
        (m.id.as_str(), m.revision.as_str(), &m.refs, &m.path),
        ("org/model", COMMIT, &vec!["main".to_string()], &snap)
    );
    let src = sharded_repo();
    let expected: usize = [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    .iter()
    .map(|f| src.files[*f].len())
    .sum();
    assert_eq!(m.size, expected as u64);

    let repo = RepoRef::parse("org/model").expect("id");
    let removed = ferrum_hub::remove(&repo, None, &cfg).expect("rm");
    assert_eq!(removed.freed, expected as u64);
    assert!(!env.hf_repo("org/model").exists());
    assert!(ferrum_hub::list(&cfg).is_empty());
    let msg = ferrum_hub::remove(&repo, None, &cfg)
        .expect_err("gone")
        .to_string();
    assert!(msg.contains("ferrum list"), "{msg}");
}

#[test]
fn an_absolute_redirect_to_the_same_host_is_not_followed_for_metadata() {
    // huggingface_hub follows only relative redirects when it reads a file's metadata: the
    // X-Linked-* headers are on the redirect itself, wherever it points.
    let env = Env::new();
    let mut repo = sharded_repo();
    repo.cdn_on_hub = true;
    env.hub.add("org/mirror", repo.clone());
    let snap = pull("org/mirror", &env.cfg(&[])).expect("pull");
    let shard = "model-00001-of-00002.safetensors";
    assert_eq!(
        std::fs::read(snap.join(shard)).expect("shard"),
        repo.files[shard]
    );
    let target = std::fs::read_link(snap.join(shard)).expect("link");
    assert_eq!(
        target,
        Path::new("../../blobs").join(sha256_hex(&repo.files[shard]))
    );
    let heads_of_lfs = env
        .hub
        .log()
        .iter()
        .filter(|l| l.method == "HEAD" && l.path.starts_with("/lfs/"))
        .count();
    assert_eq!(heads_of_lfs, 0);
}

#[test]
fn a_modelscope_folder_from_an_older_release_is_used_offline() {
    let env = Env::new();
    let ms = env.dir.path().join("ms");
    let legacy = ms.join("Qwen/Qwen2___5-0___5B");
    std::fs::create_dir_all(&legacy).expect("mkdir");
    for (f, b) in [
        ("config.json", &b"{}"[..]),
        ("tokenizer.json", b"{}"),
        ("model.safetensors", b"weights"),
    ] {
        std::fs::write(legacy.join(f), b).expect("write");
    }
    let ms = ms.display().to_string();
    let cfg = env.cfg(&[
        ("FERRUM_USE_MODELSCOPE", "1"),
        ("MODELSCOPE_CACHE", &ms),
        ("HF_HUB_OFFLINE", "1"),
    ]);
    assert_eq!(pull("Qwen/Qwen2.5-0.5B", &cfg).expect("legacy"), legacy);
}

#[test]
fn a_file_larger_than_the_free_disk_space_is_refused_before_downloading() {
    let env = Env::new();
    let mut files = BTreeMap::new();
    files.insert("huge.gguf".to_string(), b"tiny body".to_vec());
    env.hub.add(
        "org/huge",
        Repo {
            commit: COMMIT.into(),
            files,
            lfs: vec![],
            token: None,
            cdn_on_hub: false,
        },
    );
    // The hub announces far more bytes than any disk here holds.
    env.hub.fake_size("huge.gguf", u64::MAX / 4);
    let msg = pull("org/huge", &env.cfg(&[]))
        .expect_err("no space")
        .to_string();
    assert!(
        msg.contains("free") && msg.contains("HF_HUB_CACHE"),
        "{msg}"
    );
    assert!(gets(&env, "huge.gguf").is_empty(), "the download started");
}
