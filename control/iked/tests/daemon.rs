//! The daemon's own commands (list-conns, load-all, stats) through the
//! ControlHandler, and the binaries end to end: `iked --check-config`,
//! a running iked answering ikectl, SIGHUP and SIGTERM.

use iked::config;
use iked::ctl::protocol::{ErrorCode, TargetName};
use iked::ctl::ControlHandler;
use iked::daemon::{Daemon, Detached};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CONF: &str = r#"
[connections.home]
remote_addrs = "127.0.0.2"
local.auth = "psk"
remote.auth = "psk"
[connections.home.children.net]
local_ts = "10.1.0.0/16"
remote_ts = "10.2.0.0/16"

[connections.work]
remote_addrs = "127.0.0.3"
local.auth = "psk"
remote.auth = "psk"
[connections.work.children.office]
remote_ts = "10.3.0.0/16"

[secrets.ike-all]
secret = "s3cret"
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn load_all_reports_what_changed_and_keeps_the_old_config_on_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("iked.toml");
    write(&path, CONF);
    let cfg = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let d = Daemon::new(path.clone(), cfg, Detached, None);

    let conns = d.list_conns().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["home", "work"]);
    assert_eq!(conns[0].children[0].local_ts, ["10.1.0.0/16"]);
    assert_eq!(conns[1].children[0].local_ts, ["dynamic"]);
    assert_eq!(conns[0].dpd_timeout, 150);

    let changed = CONF
        .replace("remote_ts = \"10.3.0.0/16\"", "remote_ts = \"10.4.0.0/16\"")
        .replace("[connections.home]", "[connections.lab]\nremote_addrs = \"198.51.100.9\"\nlocal.auth = \"psk\"\nremote.auth = \"psk\"\n\n[connections.home]");
    write(&path, &changed);
    let s = d.load_all().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.added, s.changed, s.unchanged, s.removed.len()),
        (vec!["lab".to_owned()], vec!["work".to_owned()], vec!["home".to_owned()], 0)
    );

    // A changed PSK changes every connection using it.
    write(&path, &changed.replace("s3cret", "n3w"));
    let s = d.load_all().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.changed, ["home", "lab", "work"]);

    write(&path, "[connections.home]\nversion = 2\n");
    let e = d.load_all().await.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.code, ErrorCode::ConfigInvalid);
    assert_eq!(
        e.message,
        format!("{}: connections.home.version: IKEv2 is not supported: this daemon speaks IKEv1 only (use version = 1)", path.display())
    );
    assert_eq!(d.config().connections.len(), 3, "old configuration kept");

    let e = d.initiate(TargetName::Child("nope".into())).await.err().map(|e| (e.code, e.message));
    assert_eq!(e, Some((ErrorCode::NotFound, "no child `nope`".to_owned())));
    let e = d.initiate(TargetName::Child("net".into())).await.err().map(|e| (e.code, e.message));
    assert_eq!(
        e,
        Some((ErrorCode::Unavailable, "cannot initiate `home`: no IKE engine attached".to_owned()))
    );
    let stats = d.stats().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((stats.connections, stats.dataplane), (3, None));
    assert_eq!(d.list_sas(None).await.map(|v| v.len()), Ok(0));
}

#[test]
fn check_config_exits_zero_or_one_with_the_message() {
    let exe = env!("CARGO_BIN_EXE_iked");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/iked.example.toml");
    let out =
        Command::new(exe).arg("--check-config").arg(&example).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": OK (2 connections, 3 children, 2 secrets)\n"));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.toml");
    write(&bad, &CONF.replace("remote_ts = \"10.2.0.0/16\"", "remote_ts = \"10.2.0.0/16[tcp/1-2]\""));
    let out = Command::new(exe).arg("--check-config").arg(&bad).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "{}: connections.home.children.net.remote_ts: port range `1-2` in `10.2.0.0/16[tcp/1-2]` cannot be expressed in IKEv1 ID payloads (one port or any)\n",
            bad.display()
        )
    );
}

fn ikectl(socket: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ikectl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn iked_serves_ikectl_reloads_on_sighup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sock = dir.path().join("iked.sock");
    let conf = dir.path().join("iked.toml");
    // Loopback, a port of its own, a private SA database: nothing leaves the host.
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let daemon = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nsadb = \"{}\"\nlisten = [\"127.0.0.1\"]\nport = {port}\nport_nat_t = {}\n",
        sock.display(),
        dir.path().join("sadb").display(),
        port + 1
    );
    write(&conf, &format!("{daemon}{CONF}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_iked"))
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for(&sock);

    let (code, out, _) = ikectl(&sock, &["list-conns"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("home: IKEv1, main mode\n"), "{out}");
    let (code, out, _) = ikectl(&sock, &["--json", "stats"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("{\"version\":1,\"type\":\"stats\""), "{out}");
    let (code, out, _) = ikectl(&sock, &["initiate", "--child", "net"]);
    assert_eq!((code, out.as_str()), (Some(0), "initiating `home`\n"));
    let (code, out, _) = ikectl(&sock, &["stats"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("IKE_SAs: 1 total, 1 half-open"), "the initiation is under way: {out}");

    // A second daemon on the same socket is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_iked"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another iked is already running"));

    // SIGHUP reloads.
    write(&conf, &format!("{daemon}{}", CONF.replace("10.3.0.0/16", "10.5.0.0/16")));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().map(|s| s.success()).unwrap_or(false));
    let mut reloaded = false;
    for _ in 0..100 {
        let (_, out, _) = ikectl(&sock, &["list-conns"]);
        if out.contains("10.5.0.0/16") {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(reloaded, "SIGHUP did not reload");

    assert!(Command::new("kill").args(["-TERM", &pid]).status().map(|s| s.success()).unwrap_or(false));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "control socket removed on exit");
}
