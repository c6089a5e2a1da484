//! A small HTTP/1.1 client for `bench serve`: hyper's connection half over tokio sockets with a
//! pool of idle keep-alive connections, like the aiohttp session vLLM's benchmark uses.
//!
//! Invariants:
//! - Only `http://` base URLs (put a TLS-terminating proxy in front of an `https://` server).
//! - A connection goes back to the pool only after its response body has been read to the end
//!   ([`Response::finish`]); one dropped half-way is closed, never reused.
//! - The pool has no upper bound: concurrency is limited by the caller (`--max-concurrency`).

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the server is: host, port and a path prefix from the base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` for the socket and the `Host` header.
    pub authority: String,
    /// The base URL's path without a trailing `/` (often empty).
    pub prefix: String,
}

impl Target {
    pub fn parse(base_url: &str) -> Result<Self> {
        let rest = match base_url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => bail!(
                "--base-url {base_url}: only http:// is supported, not {scheme}:// \
                 (put a TLS-terminating proxy in front of the server)"
            ),
            None => base_url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("--base-url {base_url}: no host");
        }
        let has_port = match authority.rfind(']') {
            Some(b) => authority[b..].contains(':'),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// How errors start when the server does not accept the connection (callers retry on these).
pub const CONNECT_ERROR: &str = "connecting to";

type Sender = SendRequest<Full<Bytes>>;

pub struct Client {
    target: Target,
    headers: Vec<(String, String)>,
    idle: Mutex<Vec<Sender>>,
}

/// A response whose body is read chunk by chunk.
pub struct Response {
    pub status: StatusCode,
    body: Incoming,
    sender: Option<Sender>,
    pool: Arc<Client>,
}

impl Response {
    /// The next piece of the body, `None` at its end (when the connection returns to the pool).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => {
                    self.finish();
                    return Ok(None);
                }
                Some(frame) => {
                    if let Ok(data) = frame.context("reading the response body")?.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The rest of the body as text (at most `limit` bytes kept).
    pub async fn text(&mut self, limit: usize) -> Result<String> {
        let mut out = Vec::new();
        while let Some(b) = self.chunk().await? {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&b[..b.len().min(room)]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn finish(&mut self) {
        if let Some(s) = self.sender.take() {
            self.pool.put_back(s);
        }
    }
}

impl Client {
    /// `headers` go on every request (e.g. `Authorization`).
    pub fn new(target: Target, headers: Vec<(String, String)>) -> Arc<Self> {
        Arc::new(Self {
            target,
            headers,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn put_back(&self, s: Sender) {
        if !s.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(s);
            }
        }
    }

    async fn connection(&self) -> Result<Sender> {
        loop {
            let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
            match pooled {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => break,
            }
        }
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .with_context(|| format!("{CONNECT_ERROR} {}", self.target.authority))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or the sender is dropped; either way
            // its requests have already seen the error.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `method path` (path relative to the base URL) with a JSON body, or none.
    pub async fn request(
        self: &Arc<Self>,
        method: &str,
        path: &str,
        json: Option<Vec<u8>>,
        extra_headers: &[(&str, &str)],
    ) -> Result<Response> {
        let mut sender = self.connection().await?;
        let uri = format!("{}{}", self.target.prefix, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", &self.target.authority);
        if json.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| anyhow!("building the request for {uri}: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("{method} {uri}"))?;
        Ok(Response {
            status: resp.status(),
            body: resp.into_body(),
            sender: Some(sender),
            pool: Arc::clone(self),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let t = Target::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("127.0.0.1:8000", "")
        );
        let t = Target::parse("http://example.org/api/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("example.org:80", "/api")
        );
        let t = Target::parse("[::1]:9000/x").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("[::1]:9000", "/x")
        );
        assert_eq!(Target::parse("http://[::1]").unwrap().authority, "[::1]:80");
        let e = Target::parse("https://example.org")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only http://"), "{e}");
        assert!(Target::parse("http:///v1").is_err());
    }
}
