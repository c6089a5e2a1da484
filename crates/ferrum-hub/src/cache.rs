//! The Hugging Face cache layout, shared with `huggingface_hub`:
//!
//! ```text
//! <hub>/models--<org>--<name>/
//!   blobs/<etag>                 file contents, named by sha256 (LFS) or git blob id
//!   blobs/<etag>.incomplete      a download in progress
//!   refs/<revision>              the commit a branch or tag pointed to when last resolved
//!   snapshots/<commit>/<file>    relative symlinks into ../../blobs
//! <hub>/.locks/models--<org>--<name>/<etag>.lock
//! ```
//!
//! Invariant: a snapshot link only ever points at a complete, verified blob (blobs are renamed
//! into place after verification, and links are made after that).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

pub(crate) struct RepoCache {
    pub root: PathBuf,
    lock_dir: PathBuf,
}

/// `models--org--name`, as `huggingface_hub` names the folder of a model repository.
pub fn repo_folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

/// The inverse of [`repo_folder_name`], `None` for other folders.
pub fn repo_id_of_folder(folder: &str) -> Option<String> {
    let rest = folder.strip_prefix("models--")?;
    let (org, name) = rest.split_once("--")?;
    Some(format!("{org}/{name}"))
}

/// A 40-hex-digit commit id.
pub(crate) fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// Strips the weak marker and quotes from an ETag header value.
pub(crate) fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

impl RepoCache {
    pub(crate) fn new(hub: &Path, repo_id: &str) -> Self {
        let folder = repo_folder_name(repo_id);
        Self {
            root: hub.join(&folder),
            lock_dir: hub.join(".locks").join(folder),
        }
    }

    /// The commit `revision` names: itself when it is a commit, else what `refs/` recorded.
    pub(crate) fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_string());
        }
        let r = std::fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        let r = r.trim();
        is_commit(r).then(|| r.to_string())
    }

    pub(crate) fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.root.join("refs").join(revision);
        if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        std::fs::write(&path, commit).map_err(io_err(path))
    }

    pub(crate) fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    pub(crate) fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    pub(crate) fn incomplete(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative link.
    pub(crate) fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf> {
        let pointer = self.snapshot(commit).join(file);
        let dir = pointer.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let depth = file.split('/').count() + 1; // snapshots/<commit>/<sub/dirs...>
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        let _ = std::fs::remove_file(&pointer);
        symlink_or_copy(&target, &pointer, &self.blob(etag))?;
        Ok(pointer)
    }

    /// Holds `.locks/.../<etag>.lock` (the lock file `huggingface_hub` takes) so that two
    /// processes sharing a cache, such as replicas starting together, fetch a blob once.
    pub(crate) fn lock(&self, etag: &str) -> Result<FileLock> {
        std::fs::create_dir_all(&self.lock_dir).map_err(io_err(&self.lock_dir))?;
        FileLock::acquire(&self.lock_dir.join(format!("{etag}.lock")))
    }
}

#[cfg(unix)]
fn symlink_or_copy(target: &Path, pointer: &Path, _blob: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, pointer).map_err(io_err(pointer))
}

#[cfg(not(unix))]
fn symlink_or_copy(_target: &Path, pointer: &Path, blob: &Path) -> Result<()> {
    // Without symlinks `huggingface_hub` copies the blob into the snapshot; so do we.
    std::fs::copy(blob, pointer)
        .map(|_| ())
        .map_err(io_err(pointer))
}

/// An exclusive advisory lock, released on drop.
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        lock_exclusive(&file).map_err(io_err(path))?;
        Ok(Self { _file: file })
    }
}

/// `flock(LOCK_EX)`, the lock Python's `filelock` takes on Unix (std's `File::lock` is newer
/// than this workspace's minimum Rust).
#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor this `File` owns for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip() {
        assert_eq!(repo_folder_name("Qwen/Qwen3-4B"), "models--Qwen--Qwen3-4B");
        assert_eq!(
            repo_id_of_folder("models--Qwen--Qwen3-4B").as_deref(),
            Some("Qwen/Qwen3-4B")
        );
        assert_eq!(repo_id_of_folder("datasets--a--b"), None);
    }

    #[test]
    fn etags_are_normalized_like_huggingface_hub() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
    }

    #[test]
    fn links_are_relative_and_resolve_into_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = RepoCache::new(dir.path(), "o/n");
        let commit = "a".repeat(40);
        std::fs::create_dir_all(c.root.join("blobs")).expect("mkdir");
        std::fs::write(c.blob("e1"), b"x").expect("write");
        let p = c.link(&commit, "sub/f.json", "e1").expect("link");
        assert_eq!(std::fs::read(&p).expect("read"), b"x");
        let target = std::fs::read_link(&p).expect("readlink");
        assert_eq!(target, PathBuf::from("../../../blobs/e1"));
        c.write_ref("main", &commit).expect("ref");
        assert_eq!(c.commit_of("main"), Some(commit.clone()));
        assert_eq!(c.commit_of(&commit), Some(commit));
        assert_eq!(c.commit_of("dev"), None);
    }
}
