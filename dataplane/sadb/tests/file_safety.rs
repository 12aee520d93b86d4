//! The region file is attached only when it can be trusted (a regular file of ours, mode
//! 0600, not reached through a symbolic link, never blocking on a FIFO), the private
//! directory is checked, and a file truncated under a running process ends that process
//! with a message and a distinct status instead of a silent SIGBUS.
//!
//! The foreign-owner cases chown to uid 65534 and so need root; without root they fail
//! under `CI=true` and say they were skipped otherwise.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sadb::file::{self, LooseMode};
use sadb::*;

const NOBODY: u32 = 65534;

fn caps() -> Capacities {
    Capacities { sas: 64, policies: 16, readers: 4, event_ring: 64, ..Capacities::default() }
}

fn is_root() -> bool {
    if file::effective_uid() == 0 {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "this test needs root under CI=true");
    eprintln!("SKIPPED: this test needs root (chown to uid {NOBODY})");
    false
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A valid region at `dir/name`, closed again.
fn made(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    drop(Region::create(&p, &caps()).unwrap());
    p
}

/// Attach and open_or_create both refuse `path` with one line that names it and has `want`.
fn assert_refused(path: &Path, want: &str) {
    for (how, r) in
        [("attach", Region::attach(path)), ("open_or_create", Region::open_or_create(path, &caps()))]
    {
        let e = r.expect_err(how);
        assert!(matches!(e, SadbError::UnsafeFile { .. }), "{how}: {e:?}");
        let m = e.to_string();
        assert!(m.starts_with(&format!("refusing {}: ", path.display())), "{how}: {m}");
        assert!(m.contains(want), "{how}: `{m}` lacks `{want}`");
        assert!(m.contains("must be a regular file owned by uid"), "{how}: {m}");
        assert!(!m.contains('\n'), "{how}: one line: {m}");
    }
}

#[test]
fn a_region_of_another_uid_with_mode_0666_is_refused() {
    if !is_root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = made(d.path(), "sadb");
    Region::attach(&p).expect("our own 0600 region attaches");
    chown(&p, NOBODY);
    chmod(&p, 0o666);
    assert_refused(&p, "owned by uid 65534, mode 0666");
    // Owner alone is enough to refuse.
    chmod(&p, 0o600);
    assert_refused(&p, "owned by uid 65534, mode 0600");
}

#[test]
fn a_region_of_ours_with_group_bits_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = made(d.path(), "sadb");
    chmod(&p, 0o640);
    assert_refused(&p, &format!("owned by uid {}, mode 0640", file::effective_uid()));
    chmod(&p, 0o604);
    assert_refused(&p, "mode 0604");
}

#[test]
fn a_symlink_to_a_valid_region_of_ours_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let target = made(d.path(), "real");
    let link = d.path().join("sadb");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_refused(&link, "a symbolic link");
    Region::attach(&target).expect("the target itself is fine");
}

#[test]
fn a_fifo_at_the_path_is_refused_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sadb");
    let st = Command::new("mkfifo").arg("-m").arg("0600").arg(&p).status().expect("mkfifo runs");
    assert!(st.success());
    let (tx, rx) = mpsc::channel();
    let q = p.clone();
    std::thread::spawn(move || {
        let a = Region::attach(&q).map(|_| ());
        let b = Region::open_or_create(&q, &caps()).map(|_| ());
        let _ = tx.send((a, b));
    });
    let (a, b) = rx.recv_timeout(Duration::from_secs(10)).expect("attach returned within 10 s");
    for e in [a.unwrap_err(), b.unwrap_err()] {
        let m = e.to_string();
        assert!(m.starts_with(&format!("refusing {}: a FIFO, owned by uid", p.display())), "{m}");
    }
}

#[test]
fn a_created_region_is_ours_with_mode_0600_and_create_never_reuses_a_file() {
    let d = tempfile::tempdir().unwrap();
    let p = made(d.path(), "sadb");
    let md = std::fs::metadata(&p).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(md.uid(), file::effective_uid());
    // Create never reuses what is there.
    assert!(matches!(Region::create(&p, &caps()), Err(SadbError::Exists { .. })));
}

#[test]
fn the_private_directory_is_created_0700_and_checked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("espgw");
    file::private_dir(&dir, "the SA database's directory", LooseMode::Refuse).unwrap();
    let md = std::fs::symlink_metadata(&dir).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.mode() & 0o7777, 0o700);
    // Present and right: accepted again.
    file::private_dir(&dir, "the SA database's directory", LooseMode::Refuse).unwrap();

    let refusal = |p: &Path| {
        let e = file::private_dir(p, "the SA database's directory", LooseMode::Refuse).unwrap_err();
        assert!(matches!(e, SadbError::UnsafeDir { .. }), "{e:?}");
        e.to_string()
    };
    chmod(&dir, 0o755);
    let m = refusal(&dir);
    assert!(m.starts_with(&format!("refusing {}: owned by uid", dir.display())), "{m}");
    assert!(m.contains("mode 0755") && m.contains("must be a directory owned by uid"), "{m}");
    chmod(&dir, 0o700);

    let link = d.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    assert!(refusal(&link).contains("a symbolic link"));

    let plain = d.path().join("plain");
    std::fs::write(&plain, b"").unwrap();
    assert!(refusal(&plain).contains("a regular file"));

    if is_root() {
        chown(&dir, NOBODY);
        assert!(refusal(&dir).contains("owned by uid 65534, mode 0700"));
    }
}

#[test]
fn the_default_path_is_in_the_private_directory() {
    assert_eq!(Path::new(DEFAULT_PATH).parent(), Some(Path::new(file::DEFAULT_DIR)));
}

#[test]
fn check_file_reports_a_region_file_that_shrank() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sadb");
    let r = Region::create(&p, &caps()).unwrap();
    r.check_file().unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
    let e = r.check_file().unwrap_err();
    assert_eq!(e, SadbError::Shrunk { path: p.clone(), size: len / 2, expected: len });
    assert!(e.to_string().contains("shrank"), "{e}");
    // Not touched past the end: still alive to say so.
}

/// Runs test `test` of this binary again in a child with `env` and `SADB_TEST_CHILD=role`:
/// the test then plays that role ([`play_child`]) instead of its own body.
fn child(test: &str, role: &str, env: &[(&str, &Path)]) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads", "1"]);
    c.env("SADB_TEST_CHILD", role);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits until the child printed `ready`, then returns its stdout reader.
fn wait_ready(c: &mut std::process::Child) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended before it was ready");
        if line.trim_end().ends_with("ready") {
            return out;
        }
    }
}

/// Waits up to 10 s; returns (status, stderr).
fn finish(mut c: std::process::Child) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("the child did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn a_region_truncated_under_a_process_touching_it_ends_it_with_the_message_and_status() {
    play_child();
    let d = tempfile::tempdir().unwrap();
    let p = made(d.path(), "sadb");
    let me = "a_region_truncated_under_a_process_touching_it_ends_it_with_the_message_and_status";
    let mut c = child(me, "region", &[("SADB_TEST_REGION", &p)]);
    let _out = wait_ready(&mut c);
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    let (status, err) = finish(c);
    assert_eq!(status.code(), Some(TRUNCATED_EXIT_STATUS), "{status:?}, stderr: {err}");
    assert!(err.contains(sigbus::SIGBUS_MESSAGE), "stderr: {err}");
}

#[test]
fn a_sigbus_outside_any_region_gets_the_default_action() {
    play_child();
    let me = "a_sigbus_outside_any_region_gets_the_default_action";
    let d = tempfile::tempdir().unwrap();
    let p = made(d.path(), "sadb");
    let other = d.path().join("other");
    std::fs::write(&other, vec![0u8; 8192]).unwrap();
    let mut c = child(me, "other", &[("SADB_TEST_REGION", &p), ("SADB_TEST_OTHER", &other)]);
    let _out = wait_ready(&mut c);
    std::fs::OpenOptions::new().write(true).open(&other).unwrap().set_len(0).unwrap();
    let (status, err) = finish(c);
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}, stderr: {err}");
    assert!(!err.contains(sigbus::SIGBUS_MESSAGE), "stderr: {err}");

    // A SIGBUS sent with kill(2) is not a fault in a region either.
    let mut c = child(me, "region", &[("SADB_TEST_REGION", &p)]);
    let _out = wait_ready(&mut c);
    let st = Command::new("kill").args(["-BUS", &c.id().to_string()]).status().unwrap();
    assert!(st.success());
    let (status, err) = finish(c);
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}, stderr: {err}");
}

fn env_path(k: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(k).unwrap_or_else(|| panic!("run by its parent test with {k} set")))
}

/// In a child started by [`child`], plays the role it names and never returns; in the test
/// run itself, does nothing.
fn play_child() {
    match std::env::var("SADB_TEST_CHILD").as_deref() {
        Ok("region") => child_touches_the_region(),
        Ok("other") => child_touches_another_mapping(),
        Ok(role) => panic!("unknown child role {role}"),
        Err(_) => {}
    }
}

/// Child of the tests above: attaches the region and reads it until killed.
fn child_touches_the_region() -> ! {
    let r = Region::attach(env_path("SADB_TEST_REGION")).unwrap();
    println!("ready");
    let mut sum = 0u64;
    loop {
        sum = sum.wrapping_add(r.changes()).wrapping_add(r.list_sas().len() as u64);
        std::hint::black_box(sum);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Child of the test above: holds a region (so the handler is installed), then reads a
/// mapping of another file until it faults.
fn child_touches_another_mapping() -> ! {
    let _r = Region::attach(env_path("SADB_TEST_REGION")).unwrap();
    let f = std::fs::OpenOptions::new().read(true).write(true).open(env_path("SADB_TEST_OTHER")).unwrap();
    let map = memmap2::MmapOptions::new().len(8192).map_raw(&f).unwrap();
    println!("ready");
    loop {
        // SAFETY: inside a live 8192-byte mapping; after the parent truncates the file the
        // read faults, which is what this child is for.
        let b = unsafe { std::ptr::read_volatile(map.as_ptr().add(4096)) };
        std::hint::black_box(b);
        std::thread::sleep(Duration::from_millis(1));
    }
}
