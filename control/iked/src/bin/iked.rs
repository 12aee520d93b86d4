//! iked: the IKEv1 daemon.
//!
//! `iked --check-config FILE` validates a configuration and exits 0 or 1.
//! `iked [--config FILE] [--keylog DIR]` runs in the foreground (systemd
//! Type=simple): SIGHUP reloads the configuration, SIGTERM/SIGINT stop
//! (deleting this daemon's SAs unless `daemon.delete_sas_on_exit = false`).
#![forbid(unsafe_code)]

use clap::Parser;
use iked::cli::IkedArgs as Args;
use iked::config::{self, Config};
use iked::ctl::server::{self, Access, ServerCounters, SocketGuard};
use iked::daemon::{Daemon, EngineControl};
use iked::keylog::KeyLog;
use iked::logging;
use iked::manager::{Manager, Randomness};
use iked::sadb_writer::SadbWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

fn summary(c: &Config) -> String {
    let children: usize = c.connections.iter().map(|c| c.children.len()).sum();
    format!("{} connections, {} children, {} secrets", c.connections.len(), children, c.secrets.len())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check_config {
        return match config::load(path) {
            Ok(c) => {
                for w in c.warnings() {
                    eprintln!("{}: warning: {w}", path.display());
                }
                if args.print {
                    print!("{}", config::render(&c));
                } else {
                    println!("{}: OK ({})", path.display(), summary(&c));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let log = match logging::init(config.daemon.log.clone()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("iked: cannot set up logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iked: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "dmn", "{e}");
            eprintln!("iked: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, config: Config, log: logging::LogHandle) -> Result<(), String> {
    let socket_path = config.daemon.control_socket.clone();
    // One iked per host: the control socket is the lock.
    let listener =
        server::bind_with(&socket_path, config.daemon.ctl_group.as_ref()).await.map_err(|e| e.to_string())?;
    let _guard = SocketGuard(socket_path.clone());
    let keylog_dir = args.keylog.clone().or_else(|| config.daemon.keylog.clone());
    let keylog = match &keylog_dir {
        Some(dir) => {
            let k =
                KeyLog::open(dir).map_err(|e| format!("cannot open key log in {}: {e}", dir.display()))?;
            tracing::warn!(target: "dmn", "writing IKE and ESP keys to {} (Wireshark tables)", dir.display());
            Some(Arc::new(k))
        }
        None => None,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tracing::info!(target: "dmn", "iked {} starting: {}", env!("CARGO_PKG_VERSION"), summary(&config));
    for w in config.warnings() {
        tracing::warn!(target: "cfg", "{w}");
    }
    let delete_on_exit = config.daemon.delete_sas_on_exit;
    // One iked per SA database: a lock file beside it, in the same private
    // directory when the default is used, and like the database only ever a
    // regular file of ours with mode 0600.
    sadb::file::prepare_dir(&config.daemon.sadb).map_err(|e| format!("SA database: {e}"))?;
    let lock_path = lock_path(&config.daemon.sadb);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    let lock = sadb::file::create_or_open(&lock_path, "the lock file", &opts, sadb::file::LooseMode::Refuse)
        .map_err(|e| e.to_string())?;
    lock.try_lock().map_err(|_| {
        format!(
            "another iked already manages the SA database {} (lock {} is held)",
            config.daemon.sadb.display(),
            lock_path.display()
        )
    })?;
    let kernel = SadbWriter::open_with(&config.daemon.sadb, &SadbWriter::capacities_for(&config))
        .map_err(|e| format!("SA database: {e}"))?;
    kernel.check_fits(&config)?;
    tracing::info!(target: "knl", "SA database {}", config.daemon.sadb.display());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watched = kernel.clone();
    // The operating system's randomness, for the engine's keys and the manager's jitter.
    let randomness = Randomness { engine: Box::new(rand_core::OsRng), manager: Box::new(rand_core::OsRng) };
    let manager = Manager::new(Arc::new(config.clone()), kernel, keylog, randomness);
    let (engine, engine_task) = iked::driver::start(manager, stop_rx.clone()).await?;
    // Read at start like the socket itself: a reload does not change them.
    let access = Access::new(config.daemon.ctl_group.clone());
    let metrics = (config.daemon.metrics, config.daemon.metrics_per_sa);
    let daemon = Arc::new(Daemon::new(args.config.clone(), config, engine, Some(log)));
    // Read at start: a reload does not move the endpoint.
    let metrics_task = match metrics {
        (Some(addr), per_sa) => {
            let source: Arc<dyn iked::metrics::Source> = daemon.clone();
            Some(
                iked::metrics::serve(addr, source, per_sa, stop_rx.clone())
                    .await
                    .map_err(|e| format!("daemon.metrics: cannot listen on {addr}: {e}"))?,
            )
        }
        (None, _) => None,
    };
    let counters = Arc::new(ServerCounters::default());
    let server = tokio::spawn(server::serve_with(listener, access, Arc::clone(&daemon), counters, stop_rx));
    tracing::info!(target: "dmn", "control socket {}", socket_path.display());
    let mut file_check = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!(target: "dmn", "SIGHUP: reloading {}", args.config.display());
                if let Err(e) = daemon.reload() {
                    tracing::error!(target: "cfg", "reload failed, keeping the old configuration: {e}");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = file_check.tick() => {
                // A truncated SA database would SIGBUS the next access past its end:
                // stop before anything uses an SA from it.
                if let Err(e) = watched.region().check_file() {
                    tracing::error!(target: "knl", "{e}; exiting");
                    eprintln!("iked: {e}; exiting");
                    std::process::exit(sadb::TRUNCATED_EXIT_STATUS);
                }
            }
        }
    }
    tracing::info!(
        target: "dmn",
        "stopping; {}",
        if delete_on_exit { "deleting SAs" } else { "leaving SAs installed" }
    );
    daemon.engine().shutdown(delete_on_exit);
    let _ = stop_tx.send(true);
    let _ = engine_task.await;
    let _ = server.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    drop(lock);
    let _ = std::fs::remove_file(&lock_path);
    Ok(())
}

/// `/run/espgw/sadb` -> `/run/espgw/sadb.iked.lock`.
fn lock_path(sadb: &std::path::Path) -> PathBuf {
    let mut s = sadb.as_os_str().to_owned();
    s.push(".iked.lock");
    PathBuf::from(s)
}
