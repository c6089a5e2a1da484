//! The local store: what the caches hold (`ferrum list`) and removing it (`ferrum rm`).
//! Models fetched by `huggingface_hub` or `modelscope` into the same caches are listed too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cache::{is_commit, repo_id_of_folder, RepoCache};
use crate::error::{io_err, HubError, Result};
use crate::model_ref::RepoRef;
use crate::modelscope::{model_dir, REVISION_FILE};
use crate::selection::local_listing;
use crate::settings::{HubConfig, Source};

/// One cached snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    pub id: String,
    pub source: Source,
    /// The commit (Hugging Face) or the revision recorded at download (ModelScope).
    pub revision: String,
    /// Branches and tags that pointed at this commit when last resolved.
    pub refs: Vec<String>,
    /// Bytes of the files this snapshot shows.
    pub size: u64,
    pub path: PathBuf,
}

/// What `remove` deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub paths: Vec<PathBuf>,
    pub freed: u64,
}

fn dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn size_of(dir: &Path) -> u64 {
    local_listing(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// `(ref name, commit)` for every file under `refs/` (names like `main` or `refs/pr/1`).
fn refs_of(repo_root: &Path) -> Vec<(String, String)> {
    let refs = repo_root.join("refs");
    local_listing(&refs)
        .into_iter()
        .filter_map(|name| {
            let c = std::fs::read_to_string(refs.join(&name)).ok()?;
            Some((name, c.trim().to_string()))
        })
        .collect()
}

/// Every cached model of both sources, sorted by id.
pub fn list(cfg: &HubConfig) -> Vec<CachedModel> {
    let mut out = Vec::new();
    for repo_root in dirs(&cfg.hf_cache) {
        let Some(id) = repo_id_of_folder(&name_of(&repo_root)) else {
            continue;
        };
        let refs = refs_of(&repo_root);
        for snap in dirs(&repo_root.join("snapshots")) {
            let commit = name_of(&snap);
            out.push(CachedModel {
                id: id.clone(),
                source: Source::HuggingFace,
                refs: refs
                    .iter()
                    .filter(|(_, c)| *c == commit)
                    .map(|(r, _)| r.clone())
                    .collect(),
                revision: commit,
                size: size_of(&snap),
                path: snap,
            });
        }
    }
    for owner in dirs(&cfg.modelscope_cache.join("models")) {
        if name_of(&owner).starts_with('.') {
            continue;
        }
        for dir in dirs(&owner) {
            let revision = std::fs::read_to_string(dir.join(REVISION_FILE))
                .map(|r| r.trim().to_string())
                .unwrap_or_else(|_| "-".into());
            out.push(CachedModel {
                id: format!("{}/{}", name_of(&owner), name_of(&dir).replace("___", ".")),
                source: Source::ModelScope,
                refs: Vec::new(),
                revision,
                size: size_of(&dir),
                path: dir,
            });
        }
    }
    out.sort_by(|a, b| (&a.id, a.source.name()).cmp(&(&b.id, b.source.name())));
    out
}

/// Deletes `repo` from the cache of the configured source: every revision, or only
/// `revision` (its snapshot, the refs naming it, and the blobs no other snapshot uses).
pub fn remove(repo: &RepoRef, revision: Option<&str>, cfg: &HubConfig) -> Result<Removed> {
    match cfg.source {
        Source::ModelScope => {
            let dir = model_dir(cfg, repo);
            if !dir.is_dir() {
                return Err(HubError::NotCached(repo.repo_id.clone()));
            }
            let freed = size_of(&dir);
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            Ok(Removed {
                paths: vec![dir],
                freed,
            })
        }
        Source::HuggingFace => remove_hf(repo, revision, cfg),
    }
}

fn remove_hf(repo: &RepoRef, revision: Option<&str>, cfg: &HubConfig) -> Result<Removed> {
    let cache = RepoCache::new(&cfg.hf_cache, &repo.repo_id);
    let root = cache.root.clone();
    if !root.is_dir() {
        return Err(HubError::NotCached(repo.repo_id.clone()));
    }
    let blobs = root.join("blobs");
    let Some(revision) = revision else {
        let freed = size_of(&blobs);
        std::fs::remove_dir_all(&root).map_err(io_err(&root))?;
        let locks = cfg
            .hf_cache
            .join(".locks")
            .join(crate::cache::repo_folder_name(&repo.repo_id));
        let _ = std::fs::remove_dir_all(locks);
        return Ok(Removed {
            paths: vec![root],
            freed,
        });
    };
    let commit = cache
        .commit_of(revision)
        .filter(|c| cache.snapshot(c).is_dir())
        .ok_or_else(|| HubError::NotCached(format!("{}@{revision}", repo.repo_id)))?;
    let snap = cache.snapshot(&commit);
    std::fs::remove_dir_all(&snap).map_err(io_err(&snap))?;
    let mut removed = Removed {
        paths: vec![snap],
        freed: 0,
    };
    for (name, c) in refs_of(&root) {
        if c == commit || (is_commit(revision) && name == revision) {
            let _ = std::fs::remove_file(root.join("refs").join(name));
        }
    }
    // Blobs still linked from another snapshot stay.
    let mut used = HashSet::new();
    for snap in dirs(&root.join("snapshots")) {
        for f in local_listing(&snap) {
            if let Ok(target) = std::fs::read_link(snap.join(&f)) {
                used.insert(name_of(&target));
            }
        }
    }
    for blob in local_listing(&blobs) {
        if !used.contains(&blob) {
            let p = blobs.join(&blob);
            removed.freed += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&p).map_err(io_err(&p))?;
            removed.paths.push(p);
        }
    }
    if dirs(&root.join("snapshots")).is_empty() {
        std::fs::remove_dir_all(&root).map_err(io_err(&root))?;
    }
    Ok(removed)
}
