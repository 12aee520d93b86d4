//! Watches the SA database file while the gateway runs: a file truncated under the mapping
//! would raise SIGBUS at the next access past its new end. A thread `fstat`s the file every
//! [`INTERVAL`] ([`sadb::Region::check_file`]) and, when it has shrunk below the mapped
//! region, prints one line naming the file and ends the process with
//! [`sadb::TRUNCATED_EXIT_STATUS`], so no SA is used from a shrunk file. A worker that
//! touches the lost pages before the check runs is ended by the sadb SIGBUS handler with
//! the same status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the file is checked.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The running watch; dropping it stops the thread.
#[derive(Debug)]
pub struct Guard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts watching `region`'s file.
pub fn watch(region: Arc<sadb::Region>) -> std::io::Result<Guard> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new().name("sadb-guard".into()).spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Err(e) = region.check_file() {
                eprintln!("espd: {e}; exiting");
                // Not `process::exit`: its exit handlers would race the running workers.
                sadb::sigbus::exit_truncated();
            }
            std::thread::sleep(INTERVAL);
        }
    })?;
    Ok(Guard { stop, thread: Some(thread) })
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
