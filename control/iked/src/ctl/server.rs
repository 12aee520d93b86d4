//! The control socket server: a tokio task accepting ikectl connections and
//! answering each request line through a [`ControlHandler`].
//!
//! Hostile input never takes the daemon down: malformed JSON, unknown
//! versions or commands get an `error` reply on the same connection; a line
//! longer than [`MAX_REQUEST_LEN`] gets a `too-long` error and the
//! connection is closed (there is no way to find the next request start
//! without reading the rest of the line); at most [`MAX_CLIENTS`] clients are
//! served at once.

use super::protocol::*;
use std::future::Future;
use std::io;
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
    /// `load-all`.
    fn load_all(&self) -> impl Future<Output = Result<LoadSummary, CtlError>> + Send;
    /// `stats` (the server fills in `ctl_requests`/`ctl_errors`).
    fn stats(&self) -> impl Future<Output = Result<Stats, CtlError>> + Send;
    /// `log`: a receiver of every record from now on.
    fn follow_log(&self) -> Result<broadcast::Receiver<LogRecord>, CtlError>;
}

/// Counters kept by the server itself.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of which errors.
    pub errors: AtomicU64,
}

/// Binds the control socket at `path`, refusing when another daemon answers
/// there (one iked per host) and replacing a stale socket file otherwise.
/// The socket is made mode 0600: ikectl runs as root.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    if UnixStream::connect(path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another iked is already running (its control socket {} answers)", path.display()),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(io::Error::new(e.kind(), format!("cannot remove stale {}: {e}", path.display())))
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Removes the socket file when dropped (on shutdown).
#[derive(Debug)]
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serves until `shutdown` becomes true.
pub async fn serve<H: ControlHandler>(
    listener: UnixListener,
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
        if request.command == (Command::Log {}) {
            return follow(&*handler, &mut reader, &mut write, &counters, shutdown).await;
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
        Command::LoadAll {} => h.load_all().await.map(Reply::Loaded),
        Command::Stats {} => h.stats().await.map(|mut s| {
            s.ctl_requests = counters.requests.load(Ordering::Relaxed);
            s.ctl_errors = counters.errors.load(Ordering::Relaxed);
            Reply::Stats(s)
        }),
        Command::Log {} => Err(CtlError::new(ErrorCode::Failed, "log is streamed")),
    };
    result.unwrap_or_else(Reply::Error)
}

/// Streams log records until the client goes away or the daemon stops.
async fn follow<H: ControlHandler>(
    h: &H,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    counters: &ServerCounters,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut rx = match h.follow_log() {
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
            r = rx.recv() => match r {
                Ok(rec) => Reply::Log(rec),
                Err(broadcast::error::RecvError::Lagged(missed)) => Reply::LogLagged { missed },
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        write_response(write, &Response::new(reply)).await?;
    }
}
