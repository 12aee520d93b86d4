//! CPU time of a process or thread from `/proc/<pid>/stat` (utime + stime,
//! fields 14 and 15), for handshakes per CPU-second: the fair per-core
//! figure when responder and generator share a small machine.

use std::path::{Path, PathBuf};

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, `getconf CLK_TCK`):
/// 100 on every Linux architecture this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Where to read a CPU time from.
#[derive(Debug, Clone)]
pub struct CpuSource(PathBuf);

impl CpuSource {
    /// A whole process (all its threads).
    pub fn process(pid: u32) -> Self {
        Self(PathBuf::from(format!("/proc/{pid}/stat")))
    }

    /// One thread of this process.
    pub fn own_thread(tid: u32) -> Self {
        Self(PathBuf::from(format!("/proc/self/task/{tid}/stat")))
    }

    /// The calling thread.
    pub fn this_thread() -> Self {
        Self(PathBuf::from("/proc/thread-self/stat"))
    }

    /// CPU seconds used so far, `None` when unreadable.
    pub fn seconds(&self) -> Option<f64> {
        parse_stat(&std::fs::read_to_string(&self.0).ok()?)
    }
}

/// The calling thread's id (from the `/proc/thread-self` link).
pub fn this_thread_id() -> Option<u32> {
    let link = std::fs::read_link(Path::new("/proc/thread-self")).ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// utime + stime in seconds. The command name (field 2) is in parentheses
/// and may hold spaces or parentheses: fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line() {
        let line = "1234 (charon (x) y) S 1 1234 1234 0 -1 4194560 2133 0 0 0 250 50 0 0 20 0 17 0 9 0";
        assert_eq!(parse_stat(line), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (a) S 1 2"), None);
    }

    #[test]
    fn reads_our_own_time() {
        assert!(CpuSource::this_thread().seconds().is_some());
        assert!(CpuSource::process(std::process::id()).seconds().is_some());
        let tid = this_thread_id().unwrap();
        assert!(CpuSource::own_thread(tid).seconds().is_some());
    }
}
