//! The Hugging Face hub (or a mirror at `HF_ENDPOINT`): the endpoints `huggingface_hub` uses.
//!
//! 1. `GET /api/models/{repo}/revision/{rev}`: the commit a branch or tag points to, and the
//!    file list (`siblings[].rfilename`).
//! 2. `HEAD /{repo}/resolve/{commit}/{file}`, only relative redirects followed: the etag
//!    (`X-Linked-Etag` for LFS files, else `ETag`), the size (`X-Linked-Size`, else
//!    `Content-Length`) and, for LFS files, the CDN URL in `Location`.
//! 3. `GET` of that URL into `blobs/<etag>.incomplete`, then the blob and a snapshot link.
//!
//! Pinning every file to the commit from step 1 keeps a snapshot consistent even when the
//! branch moves during the download.

use std::path::PathBuf;

use serde::Deserialize;

use crate::cache::{is_commit, normalize_etag, RepoCache};
use crate::download::{download, Digest, Transfer};
use crate::error::{io_err, HubError, Result};
use crate::http::{check_status, header, join_url, quote, read_json, Client, Follow};
use crate::model_ref::RepoRef;
use crate::parallel::for_each;
use crate::progress::Progress;
use crate::selection::{complete_in, plan, shards, Plan};
use crate::settings::HubConfig;

#[derive(Deserialize)]
struct RepoInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

/// The cached snapshot (or GGUF file) of `repo` at `revision`, downloading what is missing.
pub(crate) fn fetch(
    cfg: &HubConfig,
    repo: &RepoRef,
    revision: &str,
    progress: Progress,
) -> Result<PathBuf> {
    let cache = RepoCache::new(&cfg.hf_cache, &repo.repo_id);
    let cached = || from_cache(cfg, &cache, repo, revision);
    // A commit never changes: when its snapshot is complete there is nothing to ask the hub.
    if cfg.offline || is_commit(revision) {
        match cached() {
            Ok(p) => return Ok(p),
            Err(e) if cfg.offline => return Err(e),
            Err(_) => {}
        }
    }
    let client = Client::new(cfg.hf_token.clone(), &cfg.hf_endpoint, cfg.read_timeout);
    let info = match repo_info(&client, cfg, repo, revision) {
        Ok(i) => i,
        Err(e @ HubError::Network { .. }) => {
            // As huggingface_hub does: an unreachable hub falls back to what is cached.
            return cached().map_err(|_| e).inspect(|p| {
                tracing::warn!(
                    "{} unreachable; using the cached {}",
                    cfg.hf_endpoint,
                    p.display()
                )
            });
        }
        Err(e) => return Err(e),
    };
    let commit = info
        .sha
        .filter(|s| is_commit(s))
        .ok_or_else(|| HubError::BadResponse(format!(
            "{}: the model info from {} has no commit sha; is HF_ENDPOINT a Hugging Face hub or mirror?",
            repo.repo_id, cfg.hf_endpoint
        )))?;
    let listing: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let files = Files {
        client: &client,
        cfg,
        cache: &cache,
        repo,
        commit: &commit,
        progress,
        group: None,
    };
    let path = match plan(repo, &listing)? {
        Plan::Gguf(f) => files.fetch(&f)?,
        Plan::Folder {
            files: names,
            index,
        } => {
            for f in &names {
                files.fetch(f)?;
            }
            if let Some(ix) = index {
                let p = cache.snapshot(&commit).join(&ix);
                let bytes = std::fs::read(&p).map_err(io_err(&p))?;
                let shards = shards(&repo.repo_id, &bytes)?;
                let group = progress.group(&format!("{} ({} shards)", repo.repo_id, shards.len()));
                let files = Files {
                    group: group.as_ref(),
                    ..files
                };
                for_each(&shards, cfg.workers, |s| files.fetch(s).map(|_| ()))?;
                if let Some(g) = group {
                    g.finish();
                }
            }
            cache.snapshot(&commit)
        }
    };
    cache.write_ref(revision, &commit)?;
    Ok(path)
}

fn repo_info(client: &Client, cfg: &HubConfig, repo: &RepoRef, revision: &str) -> Result<RepoInfo> {
    let url = format!(
        "{}/api/models/{}/revision/{}",
        cfg.hf_endpoint,
        repo.repo_id,
        quote(revision, false)
    );
    let (mut reply, url) = client.send("GET", &url, Follow::All, None)?;
    check_status(&mut reply, &url, &repo.repo_id, revision, None)?;
    read_json(
        &mut reply,
        &url,
        "the hub's model info",
        "is HF_ENDPOINT a Hugging Face hub or mirror?",
    )
}

/// What the snapshot of `revision` holds, when it is complete.
fn from_cache(
    cfg: &HubConfig,
    cache: &RepoCache,
    repo: &RepoRef,
    revision: &str,
) -> Result<PathBuf> {
    let missing = |missing: Vec<String>| HubError::OfflineMissing {
        repo: repo.display(),
        revision: revision.into(),
        cache: cfg.hf_cache.clone(),
        missing,
    };
    let commit = cache.commit_of(revision).ok_or_else(|| {
        missing(vec![format!(
            "everything (no snapshot of revision {revision} is cached)"
        )])
    })?;
    complete_in(&cache.snapshot(&commit), repo).map_err(missing)
}

/// Fetches single files of one commit into the cache.
struct Files<'a> {
    client: &'a Client,
    cfg: &'a HubConfig,
    cache: &'a RepoCache,
    repo: &'a RepoRef,
    commit: &'a str,
    progress: Progress,
    group: Option<&'a std::sync::Arc<crate::progress::Group>>,
}

impl Files<'_> {
    fn fetch(&self, file: &str) -> Result<PathBuf> {
        let pointer = self.cache.snapshot(self.commit).join(file);
        if pointer.is_file() {
            return Ok(pointer);
        }
        let repo = &self.repo.repo_id;
        let url = format!(
            "{}/{repo}/resolve/{}/{}",
            self.cfg.hf_endpoint,
            self.commit,
            quote(file, true)
        );
        let (mut reply, url) = self.client.send("HEAD", &url, Follow::Relative, None)?;
        check_status(&mut reply, &url, repo, self.commit, Some(file))?;
        let etag = header(&reply, "x-linked-etag")
            .or_else(|| header(&reply, "etag"))
            .map(|e| normalize_etag(&e))
            .filter(|e| !e.is_empty() && !e.contains(['/', '\\']))
            .ok_or_else(|| {
                HubError::BadResponse(format!(
                    "{url}: no ETag in the answer, so the file cannot be cached or verified; \
                     is HF_ENDPOINT a Hugging Face hub or mirror?"
                ))
            })?;
        let size = header(&reply, "x-linked-size")
            .or_else(|| header(&reply, "content-length"))
            .and_then(|s| s.trim().parse::<u64>().ok());
        let location = match header(&reply, "location") {
            Some(l) if reply.status().is_redirection() => join_url(&url, &l),
            _ => url,
        };
        let blob = self.cache.blob(&etag);
        if !blob.is_file() {
            // Another process may be fetching the same blob: wait for it, then look again.
            let _lock = self.cache.lock(&etag)?;
            if !blob.is_file() {
                download(
                    self.client,
                    &Transfer {
                        name: &format!("{repo}/{file}"),
                        url: &location,
                        follow: Follow::All,
                        incomplete: &self.cache.incomplete(&etag),
                        dest: &blob,
                        size,
                        digest: Digest::from_etag(&etag),
                        group: self.group,
                    },
                    self.cfg,
                    self.progress,
                )?;
            }
        }
        self.cache.link(self.commit, file, &etag)
    }
}
