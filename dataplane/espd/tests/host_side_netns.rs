//! espd sets up its exception TAP's host side by itself: in a network namespace of its own
//! whose new interfaces start without IPv6, espd on two `net_null` ports and a `net_tap`
//! TAP; the kernel's view is then read back with `ip -j link`, `ip -j addr`, `ethtool -k`
//! and `/proc/sys`: link up with the outside port's configured MAC, the port's addresses
//! (the IPv6 one without DAD), TX checksumming off, IPv6 on. `espctl ports` shows the
//! ports; the log has a line per address and per port. A TAP-less exception device with
//! `setup = true` stops espd at start with the key and the reason. Needs root (DPDK's EAL,
//! namespaces), as CI has.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TAP: &str = "esptest0";
const MAC: &str = "02:00:00:00:ab:01";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// The namespace and the espd in it, both gone when the test ends, passed or not.
struct Netns {
    name: String,
    espd: Option<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.espd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config(dir: &Path, tag: &str, exception_device: &str, extra_vdev: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
eal = ["-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
       "--log-level", "error", "--file-prefix", "espd-{tag}",
       "--vdev", "net_null0", "--vdev", "net_null1", "--vdev", "{extra_vdev}"]
[dataplane]
stats_interval = 0
mbufs = 2047
[sadb]
path = "{db}"
[[ports]]
name = "outside"
device = "net_null0"
role = "outside"
addresses = ["198.18.0.1/24", "2001:db8::1/64"]
mac = "{MAC}"
[[ports]]
name = "inside"
device = "net_null1"
role = "inside"
addresses = ["198.18.1.1/24"]
[exception]
device = "{exception_device}"
port = "outside"
"#,
        db = dir.join("sadb").display()
    );
    let path = dir.join("espd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn espd_sets_up_the_tap_host_side() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: needs root (DPDK's EAL, network namespaces)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("hostside{}", std::process::id());
    let mut ns = Netns { name: tag.clone(), espd: None };
    run(&["ip", "netns", "add", &ns.name]);
    run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
    // New interfaces in this namespace start with IPv6 off: espd must turn it on.
    run(&["ip", "netns", "exec", &ns.name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    let cfg = config(dir.path(), &tag, "net_tap0", &format!("net_tap0,iface={TAP}"));
    let log = dir.path().join("espd.log");
    let log_file = std::fs::File::create(&log).unwrap();
    ns.espd = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_espd"), "--config"])
            .arg(&cfg)
            .args(["--duration", "60"])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let ports_file = dir.path().join("sadb.ports");
    let end = Instant::now() + Duration::from_secs(30);
    while !ports_file.exists() {
        if let Some(st) = ns.espd.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("espd exited ({st}) before it was ready:\n{}", std::fs::read_to_string(&log).unwrap());
        }
        assert!(Instant::now() < end, "espd not ready:\n{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }

    let link: serde_json::Value =
        serde_json::from_str(&run(&["ip", "-n", &ns.name, "-j", "link", "show", "dev", TAP])).unwrap();
    let flags: Vec<&str> = link[0]["flags"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
    assert!(flags.contains(&"UP"), "{link}");
    assert_eq!(link[0]["address"], MAC, "the TAP has the outside port's (configured) MAC");

    let addr: serde_json::Value =
        serde_json::from_str(&run(&["ip", "-n", &ns.name, "-j", "addr", "show", "dev", TAP])).unwrap();
    let infos = addr[0]["addr_info"].as_array().unwrap();
    let find =
        |a: &str| infos.iter().find(|i| i["local"] == a).unwrap_or_else(|| panic!("{a} missing: {addr}"));
    assert_eq!(find("198.18.0.1")["prefixlen"], 24);
    let v6 = find("2001:db8::1");
    assert_eq!(v6["prefixlen"], 64);
    assert_eq!(v6["nodad"], true, "{v6}");
    assert!(v6.get("tentative").is_none(), "DAD must not hold the address: {v6}");

    let features = run(&["ip", "netns", "exec", &ns.name, "ethtool", "-k", TAP]);
    assert!(features.lines().any(|l| l == "tx-checksumming: off"), "{features}");
    let generic = features.lines().find(|l| l.trim_start().starts_with("tx-checksum-ip-generic:")).unwrap();
    assert_eq!(generic.trim(), "tx-checksum-ip-generic: off", "off, and not asked for either");

    let disable = run(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "cat",
        &format!("/proc/sys/net/ipv6/conf/{TAP}/disable_ipv6"),
    ]);
    assert_eq!(disable.trim(), "0", "IPv6 is on");

    let db = dir.path().join("sadb");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = espctl::run(["espctl", "--sadb", db.to_str().unwrap(), "ports"], &mut out, &mut err);
    let table = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "header, two ports, the TAP:\n{table}");
    for (line, words) in lines[1..].iter().zip([
        ["0", "outside", "net_null0", "-", "outside", MAC, "up"],
        ["1", "inside", "net_null1", "-", "inside", "", "up"],
        ["2", "exception", "net_tap0", TAP, "exception", MAC, ""],
    ]) {
        let got: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            assert!(w.is_empty() || got[i] == *w, "column {i} of {line:?}: want {w}\n{table}");
        }
    }
    assert!(lines[1].contains("198.18.0.1/24,2001:db8::1/64"), "{table}");

    let espd = ns.espd.as_ref().unwrap().id().to_string();
    run(&["kill", "-TERM", &espd]);
    let status = ns.espd.as_mut().unwrap().wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}\n{text}");
    for want in [
        format!("espd: exception: {TAP}: IPv6 enabled"),
        format!("espd: exception: {TAP}: link up"),
        format!("espd: exception: {TAP}: address 198.18.0.1/24 (ports[0].addresses[0])"),
        format!("espd: exception: {TAP}: address 2001:db8::1/64 nodad (ports[0].addresses[1])"),
        format!("espd: port 0 \"outside\" (net_null0): MAC {MAC}, link up"),
        format!("espd: exception net_tap0 ({TAP}): MAC {MAC}"),
    ] {
        assert!(text.lines().any(|l| l == want), "no line {want:?} in\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with(&format!("espd: exception: {TAP}: TX checksum offload"))),
        "{text}"
    );
    assert!(!ports_file.exists(), "espd removes its ports file when it stops");
}

#[test]
fn setup_of_a_device_without_kernel_interface_stops_espd() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: needs root (DPDK's EAL)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("hostside-null{}", std::process::id());
    let cfg = config(dir.path(), &tag, "net_null2", "net_null2");
    let out = Command::new(env!("CARGO_BIN_EXE_espd")).arg("--config").arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.lines().any(|l| l
            == "espd: exception.setup: net_null2 has no kernel interface to set up (only net_tap has one); set setup = false"),
        "{err}"
    );
    assert!(!dir.path().join("sadb.ports").exists(), "never ready");
}
