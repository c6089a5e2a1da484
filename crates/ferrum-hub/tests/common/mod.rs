//! A local stand-in for the Hugging Face hub, its CDN, and ModelScope, speaking just enough
//! HTTP/1.1 over std sockets: the endpoints and headers `huggingface_hub` and `modelscope`
//! use, with faults to inject (a connection cut mid-file, corrupted bytes, a required token).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha1::Digest as _;

pub fn sha256_hex(b: &[u8]) -> String {
    hex(&sha2::Sha256::digest(b))
}

pub fn git_sha1_hex(b: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// Which listener answered: "hub" or "cdn".
    pub server: &'static str,
}

#[derive(Clone)]
pub struct Repo {
    pub commit: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Files served as LFS (redirected to the CDN, sha256 etag).
    pub lfs: Vec<String>,
    /// A token the repository requires (gated).
    pub token: Option<String>,
    /// Redirect LFS files to an absolute URL on the hub's own host (as some mirrors do).
    pub cdn_on_hub: bool,
}

#[derive(Default)]
pub struct Faults {
    /// Cut the next CDN/ModelScope body after this many bytes.
    pub cut_after: Option<usize>,
    /// Flip a byte in every served LFS body.
    pub corrupt: bool,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    /// Sizes the metadata announces instead of the real ones.
    fake_sizes: BTreeMap<String, u64>,
    log: Vec<Logged>,
    faults: Faults,
}

pub struct FakeHub {
    pub url: String,
    pub cdn_url: String,
    state: Arc<Mutex<State>>,
}

impl FakeHub {
    pub fn start() -> Self {
        let hub = TcpListener::bind("127.0.0.1:0").expect("bind");
        let cdn = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", hub.local_addr().expect("addr"));
        let cdn_url = format!("http://{}", cdn.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        for (listener, name) in [(hub, "hub"), (cdn, "cdn")] {
            let state = state.clone();
            let cdn_url = cdn_url.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let state = state.clone();
                    let cdn_url = cdn_url.clone();
                    std::thread::spawn(move || serve(stream, name, &state, &cdn_url));
                }
            });
        }
        Self {
            url,
            cdn_url,
            state,
        }
    }

    pub fn add(&self, id: &str, repo: Repo) {
        self.state
            .lock()
            .expect("lock")
            .repos
            .insert(id.into(), repo);
    }

    pub fn faults(&self, f: Faults) {
        self.state.lock().expect("lock").faults = f;
    }

    pub fn fake_size(&self, file: &str, size: u64) {
        self.state
            .lock()
            .expect("lock")
            .fake_sizes
            .insert(file.into(), size);
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().expect("lock").log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().expect("lock").log.clear();
    }
}

struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_req(stream: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), unquote(v)))
        .collect();
    Some(Req {
        method,
        path: unquote(path),
        query,
        headers,
    })
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close.
    cut: Option<usize>,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: Vec::new(),
        cut: None,
    }
}

impl Reply {
    fn h(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn body(mut self, b: Vec<u8>) -> Self {
        self.body = b;
        self
    }
}

fn serve(mut stream: TcpStream, server: &'static str, state: &Mutex<State>, cdn_url: &str) {
    let Some(req) = read_req(&stream) else {
        return;
    };
    let r = {
        let mut st = state.lock().expect("lock");
        st.log.push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            server,
        });
        route(&req, server, &mut st, cdn_url)
    };
    let total = r.body.len();
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", r.status);
    let has_len = r.headers.iter().any(|(k, _)| k == "Content-Length");
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("Content-Length: {total}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if req.method != "HEAD" {
        let n = r.cut.unwrap_or(total).min(total);
        let _ = stream.write_all(&r.body[..n]);
    }
    let _ = stream.flush();
}

fn error(status: u16, code: &str) -> Reply {
    reply(status)
        .h("X-Error-Code", code)
        .h("X-Error-Message", format!("{code} (fake hub)"))
}

/// Serves `body` honouring `Range: bytes=N-`, applying the one-shot faults.
fn ranged(req: &Req, body: &[u8], faults: &mut Faults, lfs: bool) -> Reply {
    let mut body = body.to_vec();
    if lfs && faults.corrupt && !body.is_empty() {
        body[0] ^= 0xff;
    }
    let start = req.headers.get("range").and_then(|r| {
        r.strip_prefix("bytes=")?
            .split('-')
            .next()?
            .parse::<usize>()
            .ok()
    });
    let mut r = match start {
        Some(s) if s >= body.len() => return reply(416),
        Some(s) => reply(206)
            .h(
                "Content-Range",
                format!("bytes {s}-{}/{}", body.len() - 1, body.len()),
            )
            .body(body[s..].to_vec()),
        None => reply(200).body(body),
    };
    // The cut is spent on the first body long enough to be cut.
    if req.method == "GET" && faults.cut_after.is_some_and(|c| c < r.body.len()) {
        r.cut = faults.cut_after.take();
    }
    r
}

fn route(req: &Req, server: &str, st: &mut State, cdn_url: &str) -> Reply {
    let p = req.path.trim_start_matches('/');
    if server == "cdn" || p.starts_with("lfs/") {
        // /lfs/<sha256>
        let Some(sha) = p.strip_prefix("lfs/") else {
            return reply(404);
        };
        let found = st
            .repos
            .values()
            .flat_map(|r| r.files.values())
            .find(|b| sha256_hex(b) == sha)
            .cloned();
        return match found {
            Some(b) => ranged(req, &b, &mut st.faults, true),
            None => reply(404),
        };
    }
    if let Some(rest) = p.strip_prefix("api/v1/models/") {
        return modelscope(req, rest, st);
    }
    if let Some(rest) = p.strip_prefix("api/models/") {
        // {org}/{name}/revision/{rev}
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        let [org, name, "revision", rev] = parts.as_slice() else {
            return reply(404);
        };
        let id = format!("{org}/{name}");
        let Some(repo) = st.repos.get(&id) else {
            return error(401, "RepoNotFound");
        };
        if let Some(e) = refuse(req, repo) {
            return e;
        }
        if *rev != "main" && *rev != repo.commit {
            return error(404, "RevisionNotFound");
        }
        let siblings: Vec<_> = repo
            .files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        return reply(200).h("Content-Type", "application/json").body(
            serde_json::json!({ "id": id, "sha": repo.commit, "siblings": siblings })
                .to_string()
                .into_bytes(),
        );
    }
    // {org}/{name}/resolve/{rev}/{file...}
    let parts: Vec<&str> = p.splitn(5, '/').collect();
    let [org, name, "resolve", rev, file] = parts.as_slice() else {
        return reply(404);
    };
    let id = format!("{org}/{name}");
    let Some(repo) = st.repos.get(&id).cloned() else {
        return error(401, "RepoNotFound");
    };
    if let Some(e) = refuse(req, &repo) {
        return e;
    }
    if *rev != "main" && *rev != repo.commit {
        return error(404, "RevisionNotFound");
    }
    let Some(body) = repo.files.get(*file) else {
        return error(404, "EntryNotFound").h("X-Repo-Commit", &repo.commit);
    };
    if repo.lfs.iter().any(|l| l == file) {
        let sha = sha256_hex(body);
        return reply(302)
            .h("X-Repo-Commit", &repo.commit)
            .h("X-Linked-Etag", format!("\"{sha}\""))
            .h("X-Linked-Size", body.len().to_string())
            .h("ETag", "\"not-the-content-hash\"")
            .h(
                "Location",
                if repo.cdn_on_hub {
                    format!(
                        "http://{}/lfs/{sha}",
                        req.headers.get("host").cloned().unwrap_or_default()
                    )
                } else {
                    format!("{cdn_url}/lfs/{sha}")
                },
            )
            .h("Content-Length", "0");
    }
    let r = ranged(req, body, &mut st.faults, false)
        .h("X-Repo-Commit", &repo.commit)
        .h("ETag", format!("\"{}\"", git_sha1_hex(body)));
    if req.method == "HEAD" {
        let size = st
            .fake_sizes
            .get(*file)
            .copied()
            .unwrap_or(body.len() as u64);
        return r.h("Content-Length", size.to_string());
    }
    r
}

fn refuse(req: &Req, repo: &Repo) -> Option<Reply> {
    let want = repo.token.as_ref()?;
    let got = req.headers.get("authorization");
    (got != Some(&format!("Bearer {want}"))).then(|| error(401, "GatedRepo"))
}

fn modelscope(req: &Req, rest: &str, st: &mut State) -> Reply {
    // {org}/{name}/repo/files  |  {org}/{name}/repo
    let parts: Vec<&str> = rest.split('/').collect();
    let (id, tail) = match parts.as_slice() {
        [o, n, t @ ..] => (format!("{o}/{n}"), t.join("/")),
        _ => return reply(404),
    };
    let Some(repo) = st.repos.get(&id).cloned() else {
        return reply(200).body(
            serde_json::json!({"Code": 10010205001u64, "Message": "model not found", "Success": false})
                .to_string()
                .into_bytes(),
        );
    };
    if req.query.get("Revision").map(String::as_str) != Some("master") {
        return reply(404);
    }
    match tail.as_str() {
        "repo/files" => {
            assert_eq!(req.query.get("Recursive").map(String::as_str), Some("True"));
            let files: Vec<_> = repo
                .files
                .iter()
                .map(|(p, b)| {
                    serde_json::json!({
                        "Name": p.rsplit('/').next(), "Path": p, "Type": "blob",
                        "Size": b.len(), "Sha256": sha256_hex(b), "Revision": repo.commit
                    })
                })
                .chain(std::iter::once(
                    serde_json::json!({"Name": "sub", "Path": "sub", "Type": "tree", "Size": 0}),
                ))
                .collect();
            reply(200).body(
                serde_json::json!({"Code": 200, "Data": {"Files": files}, "Success": true})
                    .to_string()
                    .into_bytes(),
            )
        }
        "repo" => {
            let path = req.query.get("FilePath").cloned().unwrap_or_default();
            match repo.files.get(&path) {
                Some(b) => ranged(req, b, &mut st.faults, true),
                None => reply(404),
            }
        }
        _ => reply(404),
    }
}
