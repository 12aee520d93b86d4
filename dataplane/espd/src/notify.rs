//! systemd's readiness notification (`sd_notify(3)`): one datagram, `READY=1`, to the socket
//! named by `$NOTIFY_SOCKET`, once espd is ready (ports running, the exception TAP's host
//! side set up). With `Type=notify` in `espd.service`, units ordered after espd (iked) start
//! only then, so the addresses iked binds are on the TAP. Without `$NOTIFY_SOCKET` (not
//! started by systemd) nothing is sent.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (`READY=1`, `STOPPING=1`) to systemd, if espd runs under it.
pub fn notify(state: &str) -> std::io::Result<()> {
    notify_to(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// Sends `state` to the socket `path` (`@name`: an abstract one), if there is one.
pub fn notify_to(path: Option<&std::ffi::OsStr>, state: &str) -> std::io::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let sock = UnixDatagram::unbound()?;
    let addr = match path.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    sock.send_to_addr(state.as_bytes(), &addr).map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_reaches_the_named_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::notify_to(Some(path.as_os_str()), "READY=1").unwrap();
        let mut buf = [0u8; 16];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(super::notify_to(None, "READY=1").is_ok(), "no socket named: nothing to do");
    }
}
