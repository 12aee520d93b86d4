//! iked's files beside the SA database, its key log and its control socket are used only
//! when they are ours: a symbolic link or another user's file at the path is refused (and
//! left in place), and every ikectl connection is checked against the caller's uid and gid.
//!
//! The foreign-owner and other-uid cases chown to, or run a client as, uid 65534 and need
//! root; without root they fail under `CI=true` and say they were skipped otherwise.

use iked::ctl::server::{self, Access};
use iked::keylog::KeyLog;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "this test needs root under CI=true");
    eprintln!("SKIPPED: this test needs root (files of uid {NOBODY}, a client as uid {NOBODY})");
    false
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("{e}"));
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).map(|m| m.mode() & 0o7777).unwrap_or_else(|e| panic!("{e}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

/// A port pair of its own for each daemon this test binary starts.
fn ports() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    30_000 + (std::process::id() % 5_000) as u16 * 4 + NEXT.fetch_add(2, Ordering::Relaxed) % 4
}

/// An iked configuration in `dir` on loopback with a private SA database; `extra` is added
/// to `[daemon]`. Returns (config, socket, SA database).
fn config(dir: &Path, extra: &str) -> (PathBuf, PathBuf, PathBuf) {
    let sock = dir.join("iked.sock");
    let db = dir.join("sadb");
    let conf = dir.join("iked.toml");
    let port = ports();
    write(
        &conf,
        &format!(
            "[daemon]\ncontrol_socket = \"{}\"\nsadb = \"{}\"\nlisten = [\"127.0.0.1\"]\nport = {port}\n\
             port_nat_t = {}\n{extra}\n[connections.home]\nremote_addrs = \"127.0.0.2\"\nlocal.auth = \"psk\"\n\
             remote.auth = \"psk\"\n[connections.home.children.net]\nlocal_ts = \"10.1.0.0/16\"\n\
             remote_ts = \"10.2.0.0/16\"\n[secrets.ike-all]\nsecret = \"s3cret\"\n",
            sock.display(),
            db.display(),
            port + 1
        ),
    );
    (conf, sock, db)
}

/// Starts iked on `conf`, its stderr piped.
fn spawn_iked(conf: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_iked"))
        .arg("--config")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits up to 10 s for `ready`.
fn wait_until(ready: impl Fn() -> bool) {
    for _ in 0..400 {
        if ready() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs iked on `conf` expecting it to fail at start: returns its stderr.
fn iked_fails(conf: &Path) -> String {
    let mut child = spawn_iked(conf);
    for _ in 0..400 {
        if let Some(st) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            let mut err = String::new();
            std::io::Read::read_to_string(
                child.stderr.as_mut().unwrap_or_else(|| panic!("stderr")),
                &mut err,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(st.code(), Some(1), "{err}");
            return err;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("iked did not refuse to start within 10 s");
}

fn lock_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.iked.lock", db.display()))
}

#[test]
fn a_symlink_or_a_foreign_file_at_the_lock_path_stops_iked() {
    let dir = tempdir();
    let (conf, _sock, db) = config(dir.path(), "");
    let lock = lock_of(&db);
    let target = dir.path().join("elsewhere");
    write(&target, "");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&target, &lock).unwrap_or_else(|e| panic!("{e}"));
    let err = iked_fails(&conf);
    assert!(
        err.contains(&format!(
            "refusing {}: a symbolic link; the lock file must be a regular file",
            lock.display()
        )),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(&lock).is_ok_and(|m| m.file_type().is_symlink()), "left in place");
    assert!(!db.exists(), "refused before the SA database was touched");

    if !is_root() {
        return;
    }
    std::fs::remove_file(&lock).unwrap_or_else(|e| panic!("{e}"));
    write(&lock, "");
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
    chown(&lock, NOBODY);
    let err = iked_fails(&conf);
    assert!(err.contains(&format!("refusing {}: owned by uid 65534, mode 0600", lock.display())), "{err}");
}

#[test]
fn a_foreign_or_world_readable_sa_database_stops_iked() {
    let dir = tempdir();
    let (conf, _sock, db) = config(dir.path(), "");
    drop(sadb::Region::create(&db, &sadb::Capacities::default()).unwrap_or_else(|e| panic!("{e}")));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap_or_else(|e| panic!("{e}"));
    let err = iked_fails(&conf);
    assert!(err.contains(&format!("refusing {}: owned by uid", db.display())), "{err}");
    assert!(err.contains("mode 0666; the SA database must be a regular file owned by uid"), "{err}");
}

#[test]
fn the_key_log_refuses_symlinks_and_files_or_directories_of_others() {
    let dir = tempdir();
    // A symbolic link to a directory of ours.
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap_or_else(|e| panic!("{e}"));
    let link = dir.path().join("keys-link");
    std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("{e}"));
    let e = KeyLog::open(&link).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: a symbolic link", link.display())), "{e}");

    // A symbolic link as one of the files.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap_or_else(|e| panic!("{e}"));
    let stolen = dir.path().join("stolen");
    write(&stolen, "");
    std::os::unix::fs::symlink(&stolen, keys.join("esp_sa")).unwrap_or_else(|e| panic!("{e}"));
    let e = KeyLog::open(&keys).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: a symbolic link", keys.join("esp_sa").display())), "{e}");

    if !is_root() {
        return;
    }
    // Another user's file: refused, and its mode is not touched.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap_or_else(|e| panic!("{e}"));
    let file = theirs.join("ikev1_decryption_table");
    write(&file, "");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
    chown(&file, NOBODY);
    let e = KeyLog::open(&theirs).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: owned by uid 65534, mode 0644", file.display())), "{e}");
    assert_eq!(mode(&file), 0o644, "never chmodded");

    // Another user's directory.
    let dir_theirs = dir.path().join("dir-theirs");
    std::fs::create_dir(&dir_theirs).unwrap_or_else(|e| panic!("{e}"));
    chown(&dir_theirs, NOBODY);
    let e = KeyLog::open(&dir_theirs).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: owned by uid 65534", dir_theirs.display())), "{e}");
    assert!(!dir_theirs.join("esp_sa").exists());
}

#[tokio::test]
async fn only_a_stale_socket_of_ours_is_replaced_at_the_socket_path() {
    let dir = tempdir();
    let path = dir.path().join("iked.sock");

    // A regular file: refused and kept as it was.
    write(&path, "precious");
    let e = server::bind(&path).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: not a socket", path.display())), "{e}");
    assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("precious"));
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));

    // A symbolic link (to a file): refused, the link and its target kept.
    let target = dir.path().join("target");
    write(&target, "precious");
    std::os::unix::fs::symlink(&target, &path).unwrap_or_else(|e| panic!("{e}"));
    let e = server::bind(&path).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: a symbolic link", path.display())), "{e}");
    assert!(std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()));
    assert_eq!(std::fs::read_to_string(&target).ok().as_deref(), Some("precious"));
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));

    // A stale socket of ours (nobody listening): replaced, and the new one is 0600.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}")));
    let l = server::bind(&path).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 2, "no staging directory left");
    drop(l);

    if !is_root() {
        return;
    }
    // Another user's stale socket: refused and kept.
    chown(&path, NOBODY);
    let e = server::bind(&path).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("refusing {}: a socket, owned by uid 65534", path.display())), "{e}");
    assert!(std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()));
}

#[test]
fn access_allows_root_our_uid_and_the_group() {
    let group = iked::config::CtlGroup { name: "ops".into(), gid: 4242, members: vec![1001] };
    let a = Access { euid: 0, group: None };
    assert!(a.allows(0, 0));
    assert!(!a.allows(NOBODY, NOGROUP));
    let a = Access { euid: 500, group: Some(group) };
    assert!(a.allows(0, 7) && a.allows(500, 7), "root and our uid");
    assert!(a.allows(NOBODY, 4242), "the group's gid");
    assert!(a.allows(1001, 7), "a listed member");
    assert!(!a.allows(NOBODY, NOGROUP) && !a.allows(1002, 7));
}

fn ikectl_as(creds: Option<&[&str]>, sock: &Path) -> (Option<i32>, String) {
    let exe = env!("CARGO_BIN_EXE_ikectl");
    let mut c = match creds {
        Some(args) => {
            let mut c = Command::new("setpriv");
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out =
        c.arg("--socket").arg(sock).arg("stats").output().unwrap_or_else(|e| panic!("setpriv/ikectl: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn the_control_socket_serves_root_and_ctl_group_and_refuses_other_callers() {
    if !is_root() {
        return;
    }
    let dir = tempdir();
    // Let others reach the socket, so that its mode and SO_PEERCRED decide.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .unwrap_or_else(|e| panic!("{e}"));
    let (conf, sock, _db) = config(dir.path(), "ctl_group = \"nogroup\"");
    let mut child = spawn_iked(&conf);
    wait_until(|| sock.exists());
    let md = std::fs::symlink_metadata(&sock).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((md.mode() & 0o7777, md.gid()), (0o660, NOGROUP), "0660 and the group's");

    let root = ikectl_as(None, &sock);
    let member = ikectl_as(Some(&["--reuid=65534", "--regid=65534", "--clear-groups"]), &sock);
    // In nogroup only as a supplementary group, so the socket's mode lets it connect; its
    // credentials (uid 65534, gid 1) are not allowed.
    let other = ikectl_as(Some(&["--reuid=65534", "--regid=1", "--groups=65534"]), &sock);
    // The refusal is counted where operators look.
    let after = ikectl_as(None, &sock);

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap_or_else(|| panic!("stderr")), &mut err)
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(root.0, Some(0), "root: {}", root.1);
    assert_eq!(member.0, Some(0), "a caller of gid nogroup: {}", member.1);
    assert_ne!(other.0, Some(0), "another caller: {}", other.1);
    assert!(
        other.1.contains("permission denied: uid 65534, gid 1") && other.1.contains("group nogroup"),
        "{}",
        other.1
    );
    assert!(err.contains("refused a caller: uid 65534, gid 1"), "logged: {err}");
    assert!(after.1.contains(", 1 callers refused"), "ikectl stats: {}", after.1);
    assert!(status.success(), "{status}");
}

#[test]
fn iked_exits_naming_its_sa_database_when_the_file_shrinks() {
    let dir = tempdir();
    let (conf, sock, db) = config(dir.path(), "");
    let mut child = spawn_iked(&conf);
    wait_until(|| sock.exists() && db.exists());
    std::thread::sleep(Duration::from_millis(300));
    // The last page only: nothing iked does while idle touches it, so the periodic check
    // finds the loss, not a SIGBUS.
    let len = std::fs::metadata(&db).map(|m| m.len()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .and_then(|f| f.set_len(len - 4096))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut status = None;
    for _ in 0..200 {
        if let Some(st) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            status = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("iked still runs 5 s after its SA database shrank");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap_or_else(|| panic!("stderr")), &mut err)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(sadb::TRUNCATED_EXIT_STATUS), "{status:?}: {err}");
    assert!(
        err.contains(&format!("iked: {}: the SA database file shrank to {} bytes", db.display(), len - 4096)),
        "{err}"
    );
}
