//! The control socket server: a tokio task accepting ikectl connections and
//! answering each request line through a [`ControlHandler`].
//!
//! Hostile input never takes the daemon down: malformed JSON, unknown
//! versions or commands get an `error` reply on the same connection; a line
//! longer than [`MAX_REQUEST_LEN`] gets a `too-long` error and the
//! connection is closed (there is no way to find the next request start
//! without reading the rest of the line); at most [`MAX_CLIENTS`] clients are
//! served at once.
//!
//! Who may talk to it is checked twice: by the socket file (mode 0600, or 0660
//! with the group `daemon.ctl_group`) and, for every connection, by the
//! caller's credentials from the kernel (`SO_PEERCRED`, see [`Access`]). A
//! refused caller gets one error line, is counted and logged.

use super::protocol::*;
use crate::config::CtlGroup;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch, Semaphore};

/// Concurrent ikectl connections.
pub const MAX_CLIENTS: usize = 32;

/// What the daemon does for each command. The engine glue implements this;
/// tests use a fake.
pub trait ControlHandler: Send + Sync + 'static {
    /// `list-sas`.
    fn list_sas(&self, ike: Option<String>) -> impl Future<Output = Result<Vec<IkeSaInfo>, CtlError>> + Send;
    /// `list-conns`.
    fn list_conns(&self) -> impl Future<Output = Result<Vec<ConnectionInfo>, CtlError>> + Send;
    /// `initiate`.
    fn initiate(&self, target: TargetName) -> impl Future<Output = Result<String, CtlError>> + Send;
    /// `terminate`.
    fn terminate(&self, target: TargetName) -> impl Future<Output = Result<String, CtlError>> + Send;
    /// `rekey`.
    fn rekey(&self, target: TargetName) -> impl Future<Output = Result<String, CtlError>> + Send;
    /// `list-pols`.
    fn list_pols(&self) -> impl Future<Output = Result<Vec<PolicyInfo>, CtlError>> + Send;
    /// `load-all`.
    fn load_all(&self) -> impl Future<Output = Result<LoadSummary, CtlError>> + Send;
    /// `list-certs`: certificates, then CRLs.
    fn list_certs(&self) -> impl Future<Output = Result<(Vec<CertInfo>, Vec<CrlInfo>), CtlError>> + Send;
    /// `stats` (the server fills in `ctl_requests`/`ctl_errors`).
    fn stats(&self) -> impl Future<Output = Result<Stats, CtlError>> + Send;
    /// `log`: a receiver of every record from now on.
    fn follow_log(&self) -> Result<broadcast::Receiver<LogRecord>, CtlError>;
    /// `monitor`: a receiver of every SA event from now on.
    fn follow_events(&self) -> Result<broadcast::Receiver<EventRecord>, CtlError>;
}

/// Counters kept by the server itself.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of which errors.
    pub errors: AtomicU64,
    /// Connections refused by [`Access`].
    pub refused: AtomicU64,
}

/// Who may use the control socket: root, iked's own effective uid, and the
/// members of `daemon.ctl_group` (a caller whose effective gid is the group's,
/// or whom the group database lists as a member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// iked's effective uid.
    pub euid: u32,
    /// `daemon.ctl_group`.
    pub group: Option<CtlGroup>,
}

impl Access {
    /// Root, this process's effective uid, and `group`.
    pub fn new(group: Option<CtlGroup>) -> Self {
        Self { euid: nix::unistd::geteuid().as_raw(), group }
    }

    /// Whether a caller with these credentials is served.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0
            || uid == self.euid
            || self.group.as_ref().is_some_and(|g| g.gid == gid || g.members.contains(&uid))
    }
}

/// Binds the control socket at `path`, refusing when another daemon answers
/// there (one iked per host) and replacing a stale socket file otherwise.
/// The socket is made mode 0600: ikectl runs as root.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    bind_with(path, None).await
}

/// [`bind`], and with a `group` the socket is made mode 0660 and that group's,
/// so that its members can connect.
///
/// Only a socket of ours is replaced: anything else at the path (a file, a
/// symbolic link, another user's socket) is refused and left in place. The
/// socket is bound in a fresh 0700 directory beside the path, given its
/// final mode and owner there and then renamed into place, so it is never
/// reachable with a wider mode.
pub async fn bind_with(path: &Path, group: Option<&CtlGroup>) -> io::Result<UnixListener> {
    if UnixStream::connect(path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another iked is already running (its control socket {} answers)", path.display()),
        ));
    }
    remove_stale(path)?;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.to_path_buf()
        }
        None => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{}: no file name", path.display()))
    })?;
    let staging = dir.join(format!(".{}.bind-{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", staging.display())))?;
    let bound = (|| {
        let tmp = staging.join(name);
        let listener = UnixListener::bind(&tmp)?;
        match group {
            Some(g) => {
                std::os::unix::fs::chown(&tmp, None, Some(g.gid))?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))?;
            }
            None => std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?,
        }
        std::fs::rename(&tmp, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

/// Removes a stale socket of ours at `path`; refuses anything else there.
fn remove_stale(path: &Path) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot stat {}: {e}", path.display()))),
    };
    let euid = nix::unistd::geteuid().as_raw();
    if !md.file_type().is_socket() || md.uid() != euid {
        let kind = if md.file_type().is_symlink() {
            "a symbolic link"
        } else if md.file_type().is_socket() {
            "a socket"
        } else if md.is_dir() {
            "a directory"
        } else {
            "not a socket"
        };
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "refusing {}: {kind}, owned by uid {}, mode {:04o}; only a stale control socket owned by uid \
                 {euid} is replaced, remove it or choose another daemon.control_socket",
                path.display(),
                md.uid(),
                md.mode() & 0o7777
            ),
        ));
    }
    std::fs::remove_file(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot remove stale {}: {e}", path.display())))
}

/// Removes the socket file when dropped (on shutdown), if a socket of ours is
/// still what is there.
#[derive(Debug)]
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.0)
            .is_ok_and(|m| m.file_type().is_socket() && m.uid() == nix::unistd::geteuid().as_raw());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Serves until `shutdown` becomes true, to root and iked's own uid.
pub async fn serve<H: ControlHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, Access::new(None), handler, counters, shutdown).await
}

/// Serves until `shutdown` becomes true, to the callers `access` allows.
pub async fn serve_with<H: ControlHandler>(
    listener: UnixListener,
    access: Access,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
                continue;
            }
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(target: "dmn", "control socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let cred = stream.peer_cred().map(|c| (c.uid(), c.gid(), c.pid()));
        let refusal = match cred {
            Ok((uid, gid, _)) if access.allows(uid, gid) => None,
            Ok((uid, gid, pid)) => {
                let who = pid.map_or(String::new(), |p| format!(" (pid {p})"));
                Some(format!("uid {uid}, gid {gid}{who} may not use the control socket"))
            }
            Err(e) => Some(format!("cannot read the caller's credentials: {e}")),
        };
        if let Some(why) = refusal {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "dmn", "control socket: refused a caller: {why}");
            let mut s = stream;
            let message = format!(
                "permission denied: {why} (allowed: root, uid {}{})",
                access.euid,
                access.group.as_ref().map_or(String::new(), |g| format!(", group {}", g.name))
            );
            let no = Response::new(Reply::Error(CtlError::new(ErrorCode::Failed, message)));
            // The answer comes after the caller's first line (answering before it
            // would break the pipe under a client still writing), within a second,
            // and apart from the accept loop.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                    let mut line = Vec::new();
                    let mut limited = BufReader::new(&mut s).take((MAX_REQUEST_LEN + 1) as u64);
                    let _ = limited.read_until(b'\n', &mut line).await;
                    write_response(&mut s, &no).await
                })
                .await;
            });
            continue;
        }
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            let mut s = stream;
            let busy =
                Response::new(Reply::Error(CtlError::new(ErrorCode::Failed, "too many ikectl clients")));
            let _ = write_response(&mut s, &busy).await;
            continue;
        };
        let handler = Arc::clone(&handler);
        let counters = Arc::clone(&counters);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = client(stream, handler, counters, shutdown).await {
                tracing::debug!(target: "dmn", "ikectl client: {e}");
            }
            drop(permit);
        });
    }
}

async fn write_response(s: &mut (impl AsyncWriteExt + Unpin), r: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line).await
}

async fn client<H: ControlHandler>(
    stream: UnixStream,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_REQUEST_LEN + 1) as u64;
        let mut limited = (&mut reader).take(limit);
        let n = tokio::select! {
            n = limited.read_until(b'\n', &mut line) => n?,
            _ = shutdown.changed() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() > MAX_REQUEST_LEN {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            counters.errors.fetch_add(1, Ordering::Relaxed);
            let e = CtlError::new(ErrorCode::TooLong, format!("request longer than {MAX_REQUEST_LEN} bytes"));
            write_response(&mut write, &Response::new(Reply::Error(e))).await?;
            return Ok(());
        }
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let request = match parse_request(trimmed) {
            Ok(r) => r,
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                write_response(&mut write, &Response::new(Reply::Error(e))).await?;
                continue;
            }
        };
        let stream = match request.command {
            Command::Log {} => Some(handler.follow_log().map(Stream::Log)),
            Command::Monitor {} => Some(handler.follow_events().map(Stream::Events)),
            _ => None,
        };
        if let Some(stream) = stream {
            return follow(stream, &mut reader, &mut write, &counters, shutdown).await;
        }
        let reply = dispatch(&*handler, request.command, &counters).await;
        if matches!(reply, Reply::Error(_)) {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        write_response(&mut write, &Response::new(reply)).await?;
    }
}

async fn dispatch<H: ControlHandler>(h: &H, cmd: Command, counters: &ServerCounters) -> Reply {
    let result = match cmd {
        Command::ListSas { ike } => h.list_sas(ike).await.map(|ike_sas| Reply::Sas { ike_sas }),
        Command::ListConns {} => h.list_conns().await.map(|connections| Reply::Conns { connections }),
        Command::Initiate(t) => match t.resolve() {
            Ok(t) => h.initiate(t).await.map(|message| Reply::Done { message }),
            Err(e) => Err(e),
        },
        Command::Terminate(t) => match t.resolve() {
            Ok(t) => h.terminate(t).await.map(|message| Reply::Done { message }),
            Err(e) => Err(e),
        },
        Command::Rekey(t) => match t.resolve() {
            Ok(t) => h.rekey(t).await.map(|message| Reply::Done { message }),
            Err(e) => Err(e),
        },
        Command::ListPols {} => h.list_pols().await.map(|policies| Reply::Pols { policies }),
        Command::LoadAll {} => h.load_all().await.map(Reply::Loaded),
        Command::ListCerts {} => {
            h.list_certs().await.map(|(certificates, crls)| Reply::Certs { certificates, crls })
        }
        Command::Stats {} => h.stats().await.map(|mut s| {
            s.ctl_requests = counters.requests.load(Ordering::Relaxed);
            s.ctl_errors = counters.errors.load(Ordering::Relaxed);
            s.ctl_refused = counters.refused.load(Ordering::Relaxed);
            Reply::Stats(s)
        }),
        Command::Log {} | Command::Monitor {} => Err(CtlError::new(ErrorCode::Failed, "streamed")),
    };
    result.unwrap_or_else(Reply::Error)
}

/// What a client follows: the log (`log`) or the SA events (`monitor`).
enum Stream {
    Log(broadcast::Receiver<LogRecord>),
    Events(broadcast::Receiver<EventRecord>),
}

impl Stream {
    /// The next reply to stream: an item, or how many the client missed;
    /// `None` once the sender is gone.
    async fn next(&mut self) -> Option<Reply> {
        use broadcast::error::RecvError::{Closed, Lagged};
        match self {
            Self::Log(rx) => match rx.recv().await {
                Ok(rec) => Some(Reply::Log(rec)),
                Err(Lagged(missed)) => Some(Reply::LogLagged { missed }),
                Err(Closed) => None,
            },
            Self::Events(rx) => match rx.recv().await {
                Ok(rec) => Some(Reply::Event(rec)),
                Err(Lagged(missed)) => Some(Reply::EventsLagged { missed }),
                Err(Closed) => None,
            },
        }
    }
}

/// Streams `rx`'s replies until the client goes away or the daemon stops.
async fn follow(
    rx: Result<Stream, CtlError>,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    counters: &ServerCounters,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut rx = match rx {
        Ok(rx) => rx,
        Err(e) => {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            return write_response(write, &Response::new(Reply::Error(e))).await;
        }
    };
    let mut sink = [0u8; 256];
    loop {
        let reply = tokio::select! {
            // Anything the client sends while following is ignored; EOF ends it.
            n = reader.read(&mut sink) => match n {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
            r = rx.next() => match r {
                Some(reply) => reply,
                None => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        write_response(write, &Response::new(reply)).await?;
    }
}
