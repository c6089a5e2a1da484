//! A small blocking HTTP client over `ureq`: redirects followed by hand (so that the hub's
//! `X-Linked-*` headers on the redirect itself can be read, and the token is never sent to
//! another host), statuses returned rather than raised, and hub error headers turned into
//! errors that name the fix.

use std::time::Duration;

use ureq::http::{Response, StatusCode};
use ureq::Body;

use crate::error::{HubError, Result, MIRROR_HINT, TOKEN_HINT};

pub(crate) type Reply = Response<Body>;

const MAX_REDIRECTS: usize = 10;

pub(crate) struct Client {
    agent: ureq::Agent,
    token: Option<String>,
    /// The token goes only to the hub's own host, never to the CDN it redirects to (whose
    /// URLs are signed) nor to any other host.
    auth_host: String,
}

/// Which redirects `send` follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// All (downloads: the hub answers 302 to a CDN for large files).
    All,
    /// Only relative ones, as `huggingface_hub` does for metadata: a renamed repository
    /// redirects to its new path, while the absolute redirect to the CDN (even one on the same
    /// host, as some mirrors do) carries the `X-Linked-*` headers we want.
    Relative,
}

impl Client {
    pub(crate) fn new(token: Option<String>, endpoint: &str, read_timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            // A stalled transfer fails (and is resumed) instead of hanging forever.
            .timeout_per_read(Some(read_timeout))
            .user_agent(format!("ferrum/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            token,
            auth_host: host_of(endpoint).to_string(),
        }
    }

    /// HEAD or GET `url`, following redirects as `follow` says; `range_from` asks for the bytes
    /// from that offset on.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        follow: Follow,
        range_from: Option<u64>,
    ) -> Result<(Reply, String)> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let to_hub = host_of(&current) == self.auth_host;
            let mut req = if method == "HEAD" {
                self.agent.head(&current)
            } else {
                self.agent.get(&current)
            };
            // Compressed transfer would hide the real size and break ranges.
            req = req.header("Accept-Encoding", "identity");
            if let (Some(t), true) = (&self.token, to_hub) {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            if let Some(n) = range_from.filter(|&n| n > 0) {
                req = req.header("Range", format!("bytes={n}-"));
            }
            let reply = req.call().map_err(|e| network(&current, &e))?;
            if !reply.status().is_redirection() {
                return Ok((reply, current));
            }
            let Some(location) = header(&reply, "location") else {
                return Ok((reply, current));
            };
            let relative = location.starts_with('/') && !location.starts_with("//");
            if follow == Follow::Relative && !relative {
                return Ok((reply, current));
            }
            current = join_url(&current, &location);
        }
        Err(HubError::Network {
            url: url.into(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
            hint: MIRROR_HINT,
        })
    }
}

pub(crate) fn network(url: &str, e: &ureq::Error) -> HubError {
    HubError::Network {
        url: url.into(),
        reason: e.to_string(),
        hint: MIRROR_HINT,
    }
}

pub(crate) fn header(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The reply's body as JSON (at most 64 MiB); anything else is `{url}: not {what} (…); {hint}`.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    reply: &mut Reply,
    url: &str,
    what: &str,
    hint: &str,
) -> Result<T> {
    reply
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<T>(&b).map_err(|e| e.to_string()))
        .map_err(|e| HubError::BadResponse(format!("{url}: not {what} ({e}); {hint}")))
}

/// Turns a non-success status into the error that names the fix. `repo`, `revision` and
/// `file` only fill in the messages.
pub(crate) fn check_status(
    reply: &mut Reply,
    url: &str,
    repo: &str,
    revision: &str,
    file: Option<&str>,
) -> Result<()> {
    let status = reply.status();
    if status.is_success() || status.is_redirection() {
        return Ok(());
    }
    let code = header(reply, "x-error-code").unwrap_or_default();
    let message = header(reply, "x-error-message").unwrap_or_else(|| {
        reply
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect()
    });
    let endpoint = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[..i + 3 + j]))
        .unwrap_or(url)
        .to_string();
    Err(match (code.as_str(), status) {
        ("GatedRepo", _) | (_, StatusCode::FORBIDDEN) | (_, StatusCode::UNAUTHORIZED)
            if code != "RepoNotFound" =>
        {
            HubError::AccessDenied {
                repo: repo.into(),
                status: status.as_u16(),
                message,
                hint: TOKEN_HINT,
            }
        }
        ("RevisionNotFound", _) => HubError::RevisionNotFound {
            repo: repo.into(),
            revision: revision.into(),
        },
        ("EntryNotFound", _) => HubError::EntryNotFound {
            repo: repo.into(),
            revision: revision.into(),
            file: file.unwrap_or_default().into(),
        },
        ("RepoNotFound", _) | (_, StatusCode::UNAUTHORIZED) => HubError::RepoNotFound {
            repo: repo.into(),
            endpoint,
            status: status.as_u16(),
            hint: TOKEN_HINT,
        },
        (_, StatusCode::NOT_FOUND) if file.is_some() => HubError::EntryNotFound {
            repo: repo.into(),
            revision: revision.into(),
            file: file.unwrap_or_default().into(),
        },
        (_, StatusCode::NOT_FOUND) => HubError::RepoNotFound {
            repo: repo.into(),
            endpoint,
            status: 404,
            hint: TOKEN_HINT,
        },
        _ => HubError::Http {
            url: url.into(),
            status: status.as_u16(),
            message,
            hint: MIRROR_HINT,
        },
    })
}

/// `scheme://host[:port]` of a URL.
pub(crate) fn host_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    &url[start..end]
}

/// Resolves a `Location` against the URL it answered.
pub(crate) fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin = &base[..scheme_end + host_of(base).len()];
    if location.starts_with("//") {
        return format!("{}{location}", &base[..scheme_end.saturating_sub(2)]);
    }
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = base.split(['?', '#']).next().unwrap_or(base);
    match path.rfind('/') {
        Some(i) if i >= scheme_end => format!("{}/{location}", &path[..i]),
        _ => format!("{origin}/{location}"),
    }
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters pass); `/` passes when
/// `keep_slash` (file paths in a repository).
pub(crate) fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve_like_a_browser() {
        let base = "https://hf.co/org/m/resolve/main/a.bin?x=1";
        assert_eq!(join_url(base, "https://cdn.x/b"), "https://cdn.x/b");
        assert_eq!(
            join_url(base, "/api/resolve-cache/m"),
            "https://hf.co/api/resolve-cache/m"
        );
        assert_eq!(
            join_url(base, "b.bin"),
            "https://hf.co/org/m/resolve/main/b.bin"
        );
        assert_eq!(join_url(base, "//cdn.y/z"), "https://cdn.y/z");
        assert_eq!(host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
    }

    #[test]
    fn quoting_keeps_unreserved_characters_only() {
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("sub dir/a+b.gguf", true), "sub%20dir/a%2Bb.gguf");
    }
}
