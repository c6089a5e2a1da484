//! ModelScope (`MODELSCOPE_ENDPOINT`/`MODELSCOPE_DOMAIN`, default www.modelscope.cn), with the
//! endpoints of the `modelscope` library:
//!
//! 1. `GET /api/v1/models/{repo}/repo/files?Revision={rev}&Recursive=True`:
//!    `{"Code": 200, "Data": {"Files": [{"Path", "Type", "Size", "Sha256"}]}}`.
//! 2. `GET /api/v1/models/{repo}/repo?Revision={rev}&FilePath={path}`: the file, with `Range`.
//!
//! Files live where `modelscope` keeps them, `<MODELSCOPE_CACHE>/models/<owner>/<name>` with `.`
//! in the name written `___`, as plain files; partial downloads sit in its temporary folder
//! `models/._____temp/<owner>/<name>` until verified against `Size` and `Sha256`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::download::{download, Digest, Transfer};
use crate::error::{io_err, HubError, Result};
use crate::http::{check_status, quote, read_json, Client, Follow};
use crate::model_ref::RepoRef;
use crate::parallel::for_each;
use crate::progress::Progress;
use crate::selection::{complete_in, plan, shards, Plan};
use crate::settings::HubConfig;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    code: Option<i64>,
    message: Option<String>,
    data: Option<ListingData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListingData {
    #[serde(default)]
    files: Vec<FileMeta>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct FileMeta {
    path: String,
    #[serde(rename = "Type", default)]
    kind: String,
    size: Option<u64>,
    sha256: Option<String>,
}

/// Records which revision a folder holds (ModelScope folders carry no commit in their path).
pub(crate) const REVISION_FILE: &str = ".ferrum-revision";

/// The model's folder: `models/<owner>/<name>`, or the `<owner>/<name>` folder that `modelscope`
/// releases before 1.20 wrote directly under the cache when only that one exists.
pub(crate) fn model_dir(cfg: &HubConfig, repo: &RepoRef) -> PathBuf {
    let (owner, name) = repo.org_and_name();
    let name = name.replace('.', "___");
    let current = cfg.modelscope_cache.join("models").join(owner).join(&name);
    let legacy = cfg.modelscope_cache.join(owner).join(&name);
    if !current.exists() && owner != "models" && legacy.join("config.json").is_file() {
        return legacy;
    }
    current
}

pub(crate) fn fetch(
    cfg: &HubConfig,
    repo: &RepoRef,
    revision: &str,
    progress: Progress,
) -> Result<PathBuf> {
    let dir = model_dir(cfg, repo);
    let cached = || {
        complete_in(&dir, repo).map_err(|missing| HubError::OfflineMissing {
            repo: repo.display(),
            revision: revision.into(),
            cache: cfg.modelscope_cache.clone(),
            missing,
        })
    };
    if cfg.offline {
        return cached();
    }
    let client = Client::new(
        cfg.modelscope_token.clone(),
        &cfg.modelscope_endpoint,
        cfg.read_timeout,
    );
    let files = match list_files(&client, cfg, repo, revision) {
        Ok(f) => f,
        Err(e @ HubError::Network { .. }) => return cached().map_err(|_| e),
        Err(e) => return Err(e),
    };
    let names: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let get =
        |name: &str, group: Option<&std::sync::Arc<crate::progress::Group>>| -> Result<PathBuf> {
            let meta =
                files
                    .iter()
                    .find(|f| f.path == name)
                    .ok_or_else(|| HubError::EntryNotFound {
                        repo: repo.repo_id.clone(),
                        revision: revision.into(),
                        file: name.into(),
                    })?;
            let at = Place {
                client: &client,
                cfg,
                repo,
                revision,
                dir: &dir,
            };
            fetch_file(&at, meta, progress, group)
        };
    let path = match plan(repo, &names)? {
        Plan::Gguf(f) => get(&f, None)?,
        Plan::Folder {
            files: wanted,
            index,
        } => {
            for f in &wanted {
                get(f, None)?;
            }
            if let Some(ix) = index {
                let p = dir.join(&ix);
                let bytes = std::fs::read(&p).map_err(io_err(&p))?;
                let shards = shards(&repo.repo_id, &bytes)?;
                let group = progress.group(&format!("{} ({} shards)", repo.repo_id, shards.len()));
                for_each(&shards, cfg.workers, |s| get(s, group.as_ref()).map(|_| ()))?;
                if let Some(g) = group {
                    g.finish();
                }
            }
            dir.clone()
        }
    };
    let rev_file = dir.join(REVISION_FILE);
    std::fs::write(&rev_file, revision).map_err(io_err(rev_file))?;
    Ok(path)
}

fn list_files(
    client: &Client,
    cfg: &HubConfig,
    repo: &RepoRef,
    revision: &str,
) -> Result<Vec<FileMeta>> {
    let url = format!(
        "{}/api/v1/models/{}/repo/files?Revision={}&Recursive=True",
        cfg.modelscope_endpoint,
        repo.repo_id,
        quote(revision, false)
    );
    let (mut reply, url) = client.send("GET", &url, Follow::All, None)?;
    check_status(&mut reply, &url, &repo.repo_id, revision, None)?;
    let listing: Listing = read_json(
        &mut reply,
        &url,
        "a ModelScope file listing",
        "is MODELSCOPE_ENDPOINT right?",
    )?;
    match (listing.code, listing.data) {
        (Some(200) | None, Some(d)) => {
            Ok(d.files.into_iter().filter(|f| f.kind != "tree").collect())
        }
        (code, _) => Err(HubError::RepoNotFound {
            repo: repo.repo_id.clone(),
            endpoint: format!(
                "{} (code {}: {})",
                cfg.modelscope_endpoint,
                code.unwrap_or_default(),
                listing.message.unwrap_or_default()
            ),
            status: 200,
            hint: "for a private model set MODELSCOPE_API_TOKEN",
        }),
    }
}

/// Where files of one model revision come from and go to.
struct Place<'a> {
    client: &'a Client,
    cfg: &'a HubConfig,
    repo: &'a RepoRef,
    revision: &'a str,
    dir: &'a Path,
}

fn fetch_file(
    at: &Place,
    meta: &FileMeta,
    progress: Progress,
    group: Option<&std::sync::Arc<crate::progress::Group>>,
) -> Result<PathBuf> {
    let Place {
        client,
        cfg,
        repo,
        revision,
        dir,
    } = *at;
    if meta.path.starts_with('/') || meta.path.split('/').any(|p| p == "..") {
        return Err(HubError::BadResponse(format!(
            "{}: the listing names a path outside the repository: {}",
            repo.repo_id, meta.path
        )));
    }
    let dest = dir.join(&meta.path);
    let on_disk = std::fs::metadata(&dest).ok().map(|m| m.len());
    // A complete file was verified when it was moved here; its size is checked again in case
    // the hub's copy changed since.
    if on_disk.is_some() && (meta.size.is_none() || on_disk == meta.size) {
        return Ok(dest);
    }
    let (owner, name) = repo.org_and_name();
    let incomplete = cfg
        .modelscope_cache
        .join("models")
        .join("._____temp")
        .join(owner)
        .join(name)
        .join(&meta.path);
    let url = format!(
        "{}/api/v1/models/{}/repo?Revision={}&FilePath={}",
        cfg.modelscope_endpoint,
        repo.repo_id,
        quote(revision, false),
        quote(&meta.path, false)
    );
    download(
        client,
        &Transfer {
            name: &format!("{}/{}", repo.repo_id, meta.path),
            url: &url,
            follow: Follow::All,
            incomplete: &incomplete,
            dest: &dest,
            size: meta.size,
            digest: meta
                .sha256
                .as_deref()
                .filter(|h| h.len() == 64)
                .map(|h| Digest::Sha256(h.to_ascii_lowercase())),
            group,
        },
        cfg,
        progress,
    )?;
    Ok(dest)
}
