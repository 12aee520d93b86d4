//! The SA database file truncated under a running espd: espd must not go on (or die
//! silently) but exit with sadb's "file truncated" status and a line on stderr naming
//! the cause, within a few seconds. The ports are `net_null` (a stream of junk frames
//! that the workers drop), so the workers run bursts against the region all the time.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn remove_runtime_dir(prefix: &str) {
    for base in [
        "/var/run/dpdk".to_string(),
        format!("{}/dpdk", std::env::var("XDG_RUNTIME_DIR").unwrap_or_default()),
    ] {
        let _ = std::fs::remove_dir_all(Path::new(&base).join(prefix));
    }
}

/// Which line espd's stderr must have.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cause {
    /// The control loop's `fstat` check: a line naming the file.
    Check,
    /// Whichever came first: a worker that touches a lost page gets the SIGBUS handler's line.
    Either,
}

#[test]
fn espd_exits_with_the_cause_when_its_sa_database_is_truncated_to_nothing() {
    truncate_under_espd("zero", |_| 0, Cause::Either);
}

/// Only the last page goes, one the workers do not touch for junk frames: the periodic
/// check finds it.
#[test]
fn espd_exits_naming_the_file_when_its_sa_database_loses_its_last_page() {
    truncate_under_espd("page", |len| len - 4096, Cause::Check);
}

fn truncate_under_espd(tag: &str, new_len: fn(u64) -> u64, cause: Cause) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    common::create_sadb(&db);
    let prefix = format!("espd-truncate-{tag}-{}", std::process::id());
    let eal = common::pcap_gateway_eal(&prefix, "net_null0".into(), "net_null1".into());
    let cfg = dir.path().join("espd.toml");
    std::fs::write(&cfg, common::gateway_config(&eal, "net_null0", "net_null1", &db, 0.0)).unwrap();
    let mut espd = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("espd starts");

    // Running once its worker has registered as a reader of the region.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = espd.try_wait().unwrap() {
            let mut err = String::new();
            espd.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("espd ended before the truncation: {st:?}: {err}");
        }
        let r = sadb::Region::attach(&db).unwrap();
        if !r.readers().is_empty() {
            break;
        }
        drop(r);
        assert!(Instant::now() < deadline, "espd's worker did not register within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));

    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(new_len(len)).unwrap();
    let truncated = Instant::now();
    let status = loop {
        if let Some(st) = espd.try_wait().unwrap() {
            break st;
        }
        if truncated.elapsed() > Duration::from_secs(5) {
            let _ = espd.kill();
            let _ = espd.wait();
            remove_runtime_dir(&prefix);
            panic!("espd still runs 5 s after its SA database was truncated");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    remove_runtime_dir(&prefix);
    let mut err = String::new();
    espd.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    eprintln!("espd after the truncation: {status:?}, stderr:\n{err}");
    assert_eq!(status.code(), Some(sadb::TRUNCATED_EXIT_STATUS), "{status:?}, stderr: {err}");
    let sigbus = err.contains(sadb::sigbus::SIGBUS_MESSAGE);
    let check = err
        .lines()
        .any(|l| l.starts_with("espd: ") && l.contains(&db.display().to_string()) && l.contains("shrank"));
    match cause {
        Cause::Check => assert!(check, "stderr: {err}"),
        Cause::Either => assert!(sigbus || check, "stderr names neither cause: {err}"),
    }
}
