//! The shipped systemd units, booted by their own command lines: every
//! `ExecStartPre`, `ExecStart` and `ExecReload` of `scripts/espd.service` and
//! `scripts/iked.service` runs as systemd would run it, with the installed
//! paths (`/usr/sbin`, `/etc/espd/espd.toml`, `/etc/iked/iked.toml`)
//! pointed at the built binaries and test configurations: espd comes up as
//! the gateway and attaches the SA database with a worker, iked attaches the
//! same database and answers ikectl, a reload re-reads iked's file, and both
//! stop cleanly on SIGTERM. Needs root (DPDK's EAL; net_null devices only).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The values of `key=` lines in a unit file, in order.
fn directives(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
}

/// A unit's command line with the installed paths replaced, split as
/// systemd splits it (no quoting in these units); `$VAR`s from an absent
/// EnvironmentFile expand to nothing, `$MAINPID` to `pid`.
fn command_line(line: &str, paths: &[(&str, String)], pid: Option<u32>) -> Vec<String> {
    let mut l = line.to_owned();
    for (from, to) in paths {
        l = l.replace(from, to);
    }
    if let Some(pid) = pid {
        l = l.replace("$MAINPID", &pid.to_string());
    }
    l.split_whitespace().filter(|w| !w.starts_with('$')).map(str::to_owned).collect()
}

fn run(argv: &[String]) -> std::process::Output {
    Command::new(&argv[0]).args(&argv[1..]).output().unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

fn spawn(argv: &[String], log: &Path) -> Stop {
    let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}"));
    let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
    Stop(
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}")),
    )
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then the exit status within 30 s.
fn terminate(mut p: Stop, what: &str) -> std::process::ExitStatus {
    let pid = p.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success()));
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = p.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            return s;
        }
        assert!(Instant::now() < end, "{what} did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_shipped_units_boot_reload_and_stop() {
    if !nix_is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: needs root (DPDK's EAL)");
        return;
    }
    let espd_unit = std::fs::read_to_string(format!("{ROOT}/scripts/espd.service")).unwrap_or_default();
    let iked_unit = std::fs::read_to_string(format!("{ROOT}/scripts/iked.service")).unwrap_or_default();
    assert!(
        directives(&iked_unit, "After").iter().any(|a| a.split_whitespace().any(|u| u == "espd.service")),
        "iked orders itself after espd"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tag = format!("units-{}", std::process::id());
    let sadb = format!("/dev/shm/{tag}-sadb");
    let espd_conf = dir.path().join("espd.toml");
    std::fs::write(
        &espd_conf,
        format!(
            "eal = [\"-l\", \"0,1\", \"--no-pci\", \"--no-huge\", \"-m\", \"512\", \"--no-shconf\", \
             \"--no-telemetry\", \"--log-level\", \"error\", \"--file-prefix\", \"{tag}\", \
             \"--vdev\", \"net_null0\", \"--vdev\", \"net_null1\"]\n\
             [dataplane]\nstats_interval = 0\n[sadb]\npath = \"{sadb}\"\n\
             [[ports]]\nname = \"outside\"\ndevice = \"net_null0\"\nrole = \"outside\"\naddresses = [\"198.18.0.1/24\"]\n\
             [[ports]]\nname = \"inside\"\ndevice = \"net_null1\"\nrole = \"inside\"\naddresses = [\"198.18.1.1/24\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let iked_conf = dir.path().join("iked.toml");
    let sock = dir.path().join("iked.sock");
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let iked_text = |remote_ts: &str| {
        format!(
            "[daemon]\nsadb = \"{sadb}\"\ncontrol_socket = \"{}\"\nlisten = [\"127.0.0.1\"]\nport = {port}\n\
             port_nat_t = {}\n[connections.peer]\nremote_addrs = \"127.0.0.2\"\nlocal.auth = \"psk\"\n\
             remote.auth = \"psk\"\n[connections.peer.children.net]\nlocal_ts = \"198.18.1.0/24\"\n\
             remote_ts = \"{remote_ts}\"\n[secrets.ike-peer]\nsecret = \"units-test\"\n",
            sock.display(),
            port + 1
        )
    };
    std::fs::write(&iked_conf, iked_text("198.19.1.0/24")).unwrap_or_else(|e| panic!("{e}"));
    let sbin = common::bin("espd").parent().map(|p| p.display().to_string()).unwrap_or_default();
    let paths = [
        ("/usr/sbin", sbin),
        ("/etc/espd/espd.toml", espd_conf.display().to_string()),
        ("/etc/iked/iked.toml", iked_conf.display().to_string()),
    ];

    // espd: its checks, then the gateway.
    for pre in directives(&espd_unit, "ExecStartPre") {
        let out = run(&command_line(&pre, &paths, None));
        assert!(out.status.success(), "espd {pre}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let start = directives(&espd_unit, "ExecStart");
    assert_eq!(start.len(), 1, "{start:?}");
    let argv = command_line(&start[0], &paths, None);
    assert!(argv.iter().any(|a| a == "--config"), "espd.service runs the gateway: {argv:?}");
    let espd = spawn(&argv, &dir.path().join("espd.log"));
    let espd_pid = espd.0.id();
    wait_until("espd's worker attached to the SA database", 30, || {
        sadb::Region::attach(&sadb).is_ok_and(|r| r.readers().iter().any(|x| x.pid == espd_pid))
    });

    // iked: its check, then the daemon on the same database.
    for pre in directives(&iked_unit, "ExecStartPre") {
        let out = run(&command_line(&pre, &paths, None));
        assert!(out.status.success(), "iked {pre}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let start = directives(&iked_unit, "ExecStart");
    assert_eq!(start.len(), 1, "{start:?}");
    let iked = spawn(&command_line(&start[0], &paths, None), &dir.path().join("iked.log"));
    wait_until("iked's control socket", 20, || sock.exists());
    let ikectl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ikectl"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stats = ikectl(&["--json", "stats"]);
    let v: serde_json::Value = serde_json::from_str(stats.trim()).unwrap_or_else(|e| panic!("{e}: {stats}"));
    assert!(
        v["dataplane"]["rx_packets"].as_u64().is_some_and(|n| n > 0),
        "iked reads espd's counters: {stats}"
    );

    // Reload: the unit's own ExecReload lines (check, then SIGHUP).
    std::fs::write(&iked_conf, iked_text("198.19.5.0/24")).unwrap_or_else(|e| panic!("{e}"));
    for line in directives(&iked_unit, "ExecReload") {
        let out = run(&command_line(&line, &paths, Some(iked.0.id())));
        assert!(out.status.success(), "iked {line}: {}", String::from_utf8_lossy(&out.stderr));
    }
    wait_until("the reload", 10, || ikectl(&["list-conns"]).contains("198.19.5.0/24"));

    let status = terminate(iked, "iked");
    assert!(status.success(), "iked: {status}");
    let status = terminate(espd, "espd");
    assert!(status.success(), "espd: {status}");
    let _ = std::fs::remove_file(&sadb);
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
