//! Opening the listening socket, with errors that say what to change.
//!
//! Invariant: a bind failure keeps its `io::ErrorKind` (callers and tests can match on it) and
//! its message names the address, the cause and the flag that fixes it.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Binds `addr`; the error explains the usual causes (port taken, privileged port, an address
/// this machine does not have).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| explain_bind_error(addr, e))
}

pub fn explain_bind_error(addr: SocketAddr, e: io::Error) -> io::Error {
    let port = addr.port();
    let host = addr.ip();
    let message = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "port {port} is already in use on {host} (another ferrum or vLLM server still \
             running?): stop that process (`ss -ltnp 'sport = :{port}'` shows it) or choose a free \
             port with --port"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "not allowed to listen on port {port} ({e}): ports below 1024 need root; choose \
             --port 8000 or another above 1023"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "{host} is not an address of this machine ({e}): use --host 127.0.0.1 (this \
             machine only) or --host 0.0.0.0 (every interface)"
        ),
        _ => format!("cannot listen on {addr}: {e} (change --host or --port)"),
    };
    io::Error::new(e.kind(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_named_with_the_flag_to_change() {
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = first.local_addr().expect("addr");
        let e = bind(addr).await.expect_err("port is taken");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let m = e.to_string();
        assert!(
            m.starts_with(&format!(
                "port {} is already in use on 127.0.0.1",
                addr.port()
            )),
            "{m}"
        );
        assert!(m.contains("--port"), "{m}");
        drop(first);
        assert!(bind(addr).await.is_ok());
    }
}
