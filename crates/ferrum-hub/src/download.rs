//! One file from a URL into place: written to a `.incomplete` file first, resumed with `Range`
//! after a cut connection (in this run, or in a later one that finds the partial file),
//! checked against the announced size and content hash, then renamed into place, so that a
//! file at its final path is always whole and verified.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha1::Digest as _;

use crate::error::{io_err, HubError, Result};
use crate::http::{check_status, header, Client, Follow};
use crate::progress::Progress;
use crate::settings::HubConfig;

/// The content hash a download must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    /// LFS files: the hub's etag is the sha256 of the content.
    Sha256(String),
    /// Regular git files: the etag is the git blob id, sha1 of `blob <size>\0<content>`.
    GitSha1(String),
}

impl Digest {
    /// From a normalized etag: 64 hex digits are a sha256, 40 a git blob id; anything else
    /// (a mirror's own etag) checks nothing beyond the size.
    pub(crate) fn from_etag(etag: &str) -> Option<Self> {
        let hex = etag.chars().all(|c| c.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Some(Self::Sha256(etag.to_ascii_lowercase())),
            40 if hex => Some(Self::GitSha1(etag.to_ascii_lowercase())),
            _ => None,
        }
    }

    fn expected(&self) -> &str {
        match self {
            Self::Sha256(h) | Self::GitSha1(h) => h,
        }
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
    None,
}

impl Hasher {
    fn new(digest: Option<&Digest>, size: Option<u64>) -> Self {
        match (digest, size) {
            (Some(Digest::Sha256(_)), _) => Self::Sha256(sha2::Sha256::new()),
            (Some(Digest::GitSha1(_)), Some(n)) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {n}\0").as_bytes());
                Self::GitSha1(h)
            }
            _ => Self::None,
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::GitSha1(h) => h.update(b),
            Self::None => {}
        }
    }

    fn hex(self) -> Option<String> {
        let bytes: Vec<u8> = match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::GitSha1(h) => h.finalize().to_vec(),
            Self::None => return None,
        };
        Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// What to fetch and where it goes.
pub(crate) struct Transfer<'a> {
    /// For messages: `org/name/file`.
    pub name: &'a str,
    pub url: &'a str,
    pub follow: Follow,
    pub incomplete: &'a Path,
    pub dest: &'a Path,
    pub size: Option<u64>,
    pub digest: Option<Digest>,
    /// The shared bar of files fetched together.
    pub group: Option<&'a std::sync::Arc<crate::progress::Group>>,
}

/// How one GET ended.
enum Attempt {
    Complete,
    /// A network failure worth resuming after.
    Retry(HubError),
}

const CHUNK: usize = 1 << 20;

pub(crate) fn download(
    client: &Client,
    t: &Transfer,
    cfg: &HubConfig,
    progress: Progress,
) -> Result<()> {
    if let Some(dir) = t.incomplete.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(t.incomplete)
        .map_err(io_err(t.incomplete))?;
    let mut have = file.metadata().map_err(io_err(t.incomplete))?.len();
    if t.size.is_some_and(|s| have > s) {
        have = truncate(&mut file, t.incomplete)?;
    }
    // The bytes already on disk enter the hash first, so resuming costs one read of them.
    let mut hasher = Hasher::new(t.digest.as_ref(), t.size);
    if have > 0 && !matches!(hasher, Hasher::None) {
        file.seek(SeekFrom::Start(0))
            .map_err(io_err(t.incomplete))?;
        let mut buf = vec![0u8; CHUNK];
        let mut left = have;
        while left > 0 {
            let n = file
                .read(&mut buf[..CHUNK.min(left as usize)])
                .map_err(io_err(t.incomplete))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
    }
    file.seek(SeekFrom::Start(have))
        .map_err(io_err(t.incomplete))?;
    if let (Some(size), Some(dir)) = (t.size, t.incomplete.parent()) {
        check_space(t.name, dir, size.saturating_sub(have))?;
    }
    let mut bar = progress.file(t.name, t.size, have, t.group);
    let mut attempt = 0;
    loop {
        if t.size == Some(have) {
            break;
        }
        attempt += 1;
        match fetch_once(client, t, &mut file, &mut have, &mut hasher, &mut bar)? {
            Attempt::Complete => break,
            Attempt::Retry(e) if attempt >= cfg.attempts => return Err(e),
            Attempt::Retry(e) => {
                let wait = cfg.retry_delay * 2u32.saturating_pow(attempt - 1);
                progress.note(&format!(
                    "{}: {e}; resuming at byte {have} in {:.1}s (attempt {}/{})",
                    t.name,
                    wait.as_secs_f64(),
                    attempt + 1,
                    cfg.attempts
                ));
                std::thread::sleep(wait);
            }
        }
    }
    bar.finish();
    file.flush().map_err(io_err(t.incomplete))?;
    drop(file);
    if let Some(expected) = t.size.filter(|&s| s != have) {
        return Err(HubError::SizeMismatch {
            file: t.name.into(),
            expected,
            actual: have,
        });
    }
    if let (Some(d), Some(actual)) = (&t.digest, hasher.hex()) {
        if d.expected() != actual {
            // A wrong byte cannot be found by resuming: start over next time.
            let _ = std::fs::remove_file(t.incomplete);
            return Err(HubError::HashMismatch {
                file: t.name.into(),
                expected: d.expected().into(),
                actual,
            });
        }
    }
    if let Some(dir) = t.dest.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::rename(t.incomplete, t.dest).map_err(io_err(t.dest))
}

/// Refuses to start a download the disk cannot hold, rather than failing near its end.
fn check_space(name: &str, dir: &Path, need: u64) -> Result<()> {
    match free_bytes(dir) {
        Some(free) if free < need => Err(HubError::NoSpace {
            file: name.into(),
            dir: dir.to_path_buf(),
            need,
            free,
        }),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs reads a NUL-terminated path and fills the zeroed struct it is given.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

fn truncate(file: &mut File, path: &Path) -> Result<u64> {
    file.set_len(0).map_err(io_err(path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    Ok(0)
}

fn fetch_once(
    client: &Client,
    t: &Transfer,
    file: &mut File,
    have: &mut u64,
    hasher: &mut Hasher,
    bar: &mut crate::progress::FileProgress,
) -> Result<Attempt> {
    let (mut reply, url) = match client.send("GET", t.url, t.follow, Some(*have)) {
        Ok(r) => r,
        Err(e @ HubError::Network { .. }) => return Ok(Attempt::Retry(e)),
        Err(e) => return Err(e),
    };
    let status = reply.status().as_u16();
    match status {
        206 => {
            // The server must continue where we stopped; anything else restarts the file.
            let start = header(&reply, "content-range").and_then(|r| {
                r.strip_prefix("bytes ")?
                    .split('-')
                    .next()?
                    .parse::<u64>()
                    .ok()
            });
            if start.is_some_and(|s| s != *have) {
                *have = truncate(file, t.incomplete)?;
                *hasher = Hasher::new(t.digest.as_ref(), t.size);
                bar.reset(0);
                return Ok(Attempt::Retry(HubError::BadResponse(format!(
                    "{url} answered a range that does not continue the partial file"
                ))));
            }
        }
        200 => {
            if *have > 0 {
                // The server ignored the range: take the whole body again.
                *have = truncate(file, t.incomplete)?;
                *hasher = Hasher::new(t.digest.as_ref(), t.size);
                bar.reset(0);
            }
        }
        416 if t.size.is_none() => return Ok(Attempt::Complete),
        416 => {
            *have = truncate(file, t.incomplete)?;
            *hasher = Hasher::new(t.digest.as_ref(), t.size);
            bar.reset(0);
            return Ok(Attempt::Retry(HubError::BadResponse(format!(
                "{url} refused the range of a partial file"
            ))));
        }
        429 | 500..=599 => {
            let e = check_status(&mut reply, &url, t.name, "", None)
                .err()
                .unwrap_or_else(|| HubError::BadResponse(format!("HTTP {status} from {url}")));
            return Ok(Attempt::Retry(e));
        }
        _ => {
            check_status(&mut reply, &url, t.name, "", Some(t.name))?;
            return Err(HubError::BadResponse(format!(
                "unexpected HTTP {status} from {url}"
            )));
        }
    }
    let mut body = reply.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Ok(Attempt::Retry(HubError::Network {
                    url,
                    reason: format!("transfer cut after {} bytes: {e}", *have),
                    hint: crate::error::MIRROR_HINT,
                }))
            }
        };
        file.write_all(&buf[..n]).map_err(io_err(t.incomplete))?;
        hasher.update(&buf[..n]);
        *have += n as u64;
        bar.advance(n as u64);
    }
    match t.size {
        Some(s) if *have < s => Ok(Attempt::Retry(HubError::Network {
            url,
            reason: format!("connection closed at byte {} of {s}", *have),
            hint: crate::error::MIRROR_HINT,
        })),
        _ => Ok(Attempt::Complete),
    }
}
