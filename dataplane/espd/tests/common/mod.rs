//! Shared by the scapy-checked gateway tests (`gw_pcap` on net_pcap ports, `gw_virtio` on
//! virtio-user ports behind testpmd's vhost-user ports): the hand-keyed SA database, the
//! gateway's configuration, the scapy side (`scapy/gw_pcap.py`) and the checks of espd's
//! report and of the SA database after the run.
//!
//! The traffic is fixed by `gw_pcap.py make`: 40 plaintext packets from host A on the inside;
//! on the outside 29 good ESP packets from the peer, a replay, a tampered ICV and an unknown
//! SPI. Both tests assert the same counters.
#![allow(dead_code)] // each test crate uses a part of these helpers

use std::path::Path;
use std::process::{Command, Output};

use sadb::*;

/// Plaintext packets `gw_pcap.py make` writes for the inside port.
pub const PLAIN: u64 = 40;
/// Good ESP packets it writes for the outside port (then a replay, a bad ICV and an
/// unknown SPI).
pub const ESP_GOOD: u64 = 29;

/// An IPv4 address in the SA database's 16-byte form.
pub fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn gcm(spi: u32, dir: Direction, src: [u8; 4], dst: [u8; 4], key: &[u8]) -> SaConfig {
    let mut c = gcm_sa(spi, dir, SaMode::Tunnel, src, dst, key, 64);
    c.backend = Backend::IpsecMb as u8;
    if dir == Direction::In {
        let net = |n: u8| Selector {
            addr_start: v4([198, n, 1, 0]),
            addr_end: v4([198, n, 1, 255]),
            family: 4,
            port_end: u16::MAX,
            ..Default::default()
        };
        (c.ts_local, c.ts_remote) = (net(18), net(19));
    }
    c
}

/// GCM key material: the key bytes `range`, then the 4-byte salt.
pub fn key(range: std::ops::Range<u8>, salt: [u8; 4]) -> Vec<u8> {
    range.chain(salt).collect()
}

/// Creates the SA database at `db` with the keys `gw_pcap.py` uses: outbound SPI 0x2000
/// (198.18.0.1 → 198.18.0.2), inbound SPI 0x1000, AES-128-GCM, and the policy that protects
/// 198.18.1.0/24 → 198.19.1.0/24.
pub fn create_sadb(db: &Path) {
    let region =
        Region::create(db, &Capacities { sas: 256, policies: 16, readers: 8, ..Capacities::default() })
            .unwrap();
    let mut w = region.writer().unwrap();
    w.add_sa(&gcm(0x2000, Direction::Out, [198, 18, 0, 1], [198, 18, 0, 2], &key(0..16, [1, 2, 3, 4])))
        .unwrap();
    w.add_sa(&gcm(0x1000, Direction::In, [198, 18, 0, 2], [198, 18, 0, 1], &key(16..32, [5, 6, 7, 8])))
        .unwrap();
    let p = PolicyConfig {
        id: 1,
        priority: 10,
        reqid: 1,
        direction: Direction::Out as u8,
        action: Action::Protect as u8,
        family: 4,
        proto: 0,
        src: v4([198, 18, 1, 0]),
        dst: v4([198, 19, 1, 0]),
        src_plen: 24,
        dst_plen: 24,
        _pad: [0; 2],
        sport: [0, 65535],
        dport: [0, 65535],
        _pad2: 0,
    };
    w.add_policy(&p).unwrap();
}

/// espd's configuration file: the EAL arguments, the two ports by DPDK device name, the SA
/// database, and the peer and host A as static neighbours with the MACs `gw_pcap.py` uses.
pub fn gateway_config(eal: &[String], outside: &str, inside: &str, db: &Path, stats_interval: f64) -> String {
    // A JSON array of strings is a valid TOML array.
    let eal = serde_json::to_string(eal).unwrap();
    let db = serde_json::to_string(&db.display().to_string()).unwrap();
    format!(
        r#"
eal = {eal}
[dataplane]
stats_interval = {stats_interval:?}
[sadb]
path = {db}
[[ports]]
name = "outside"
device = "{outside}"
role = "outside"
addresses = ["198.18.0.1/24"]
[[ports]]
name = "inside"
device = "{inside}"
role = "inside"
addresses = ["198.18.1.1/24"]
[[routes]]
prefix = "198.19.1.0/24"
via = "198.18.0.2"
[[neighbors]]
ip = "198.18.0.2"
mac = "02:00:00:00:00:02"
port = "outside"
[[neighbors]]
ip = "198.18.1.10"
mac = "02:00:00:00:0a:10"
port = "inside"
"#
    )
}

/// Runs `gw_pcap.py COMMAND DIR OPTIONS...` (`make` or `check`).
pub fn scapy(dir: &Path, command: &str, options: &[&str]) -> Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/gw_pcap.py"))
        .arg(command)
        .arg(dir)
        .args(options)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it with scapy)")
}

/// Runs `gw_pcap.py check` and fails with its explanation on a mismatch.
pub fn scapy_check(dir: &Path, options: &[&str]) {
    let checked = scapy(dir, "check", options);
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "scapy check failed:\n{text}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// The JSON report espd's `--json` prints as its last line on stdout.
pub fn parse_report(stdout: &str, stderr: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON report from espd ({e}); stdout: {stdout}\nstderr: {stderr}"))
}

/// Every packet under its counter: each plaintext packet encapsulated, each good ESP packet
/// decapsulated, and the replay, the bad ICV and the unknown SPI each dropped for its reason.
pub fn assert_counters(report: &serde_json::Value) {
    let c = &report["counters"];
    assert_eq!(c["encap-packets"], PLAIN, "{report}");
    assert_eq!(c["decap-packets"], ESP_GOOD, "{report}");
    assert_eq!(c["drop-replay"], 1, "{report}");
    assert_eq!(c["drop-auth"], 1, "{report}");
    assert_eq!(c["drop-no-sa"], 1, "{report}");
}

/// The SA database saw it too: per-SA counters and the outbound sequence number.
pub fn assert_sadb(db: &Path) {
    let region = Region::attach(db).unwrap();
    let sas = region.list_sas();
    let out_sa = sas.iter().find(|e| e.config.spi == 0x2000).unwrap();
    let in_sa = sas.iter().find(|e| e.config.spi == 0x1000).unwrap();
    assert_eq!((out_sa.stats.packets, out_sa.stats.seq), (PLAIN, PLAIN));
    assert_eq!((in_sa.stats.packets, in_sa.stats.seq), (ESP_GOOD, ESP_GOOD));
    assert_eq!(in_sa.stats.drops[esp::DropReason::Replay as usize], 1);
    assert_eq!(in_sa.stats.drops[esp::DropReason::Auth as usize], 1);
}

/// An AES-128-GCM SA (`key` = 16 key bytes + 4 salt bytes), IPv4 outer addresses, no
/// selectors, replay window `window`.
pub fn gcm_sa(
    spi: u32,
    dir: Direction,
    mode: SaMode,
    src: [u8; 4],
    dst: [u8; 4],
    key: &[u8],
    window: u32,
) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 1;
    c.direction = dir as u8;
    c.mode = mode as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.cipher_key[..16].copy_from_slice(&key[..16]);
    c.salt.copy_from_slice(&key[16..20]);
    c.replay_window = window;
    c.src = v4(src);
    c.dst = v4(dst);
    c.dscp = 0xff;
    c
}

/// An outbound IPv4 policy `src/src_plen -> dst/dst_plen`, any protocol and port.
pub fn out_policy(
    id: u32,
    action: Action,
    reqid: u32,
    src: ([u8; 4], u8),
    dst: ([u8; 4], u8),
) -> PolicyConfig {
    PolicyConfig {
        id,
        priority: 10,
        reqid,
        direction: Direction::Out as u8,
        action: action as u8,
        family: 4,
        proto: 0,
        src: v4(src.0),
        dst: v4(dst.0),
        src_plen: src.1,
        dst_plen: dst.1,
        _pad: [0; 2],
        sport: [0, 65535],
        dport: [0, 65535],
        _pad2: 0,
    }
}

/// The EAL arguments of a pcap-driven run: lcores 0 and 1, no hugepages, a private prefix.
pub fn pcap_eal(tag: &str) -> String {
    format!(
        r#""-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry", "--log-level", "error", "--file-prefix", "espd-{tag}-{}""#,
        std::process::id()
    )
}

/// The EAL arguments of a gateway run on two `net_pcap` ports (`net_pcap0` outside, `net_pcap1`
/// inside, given as their vdev argument strings) with a private file prefix, as a vector.
pub fn pcap_gateway_eal(prefix: &str, outside: String, inside: String) -> Vec<String> {
    let fixed = ["-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"];
    let mut v: Vec<String> = fixed.map(String::from).into();
    v.extend(["--log-level", "error", "--file-prefix", prefix].map(String::from));
    v.extend(["--vdev".to_owned(), outside, "--vdev".to_owned(), inside]);
    v
}

/// espd's configuration for a gateway on `net_pcap` devices in one directory: `outside`
/// (`net_pcap0`, 198.18.0.1/24) and `inside` (`net_pcap1`, 198.18.1.1/24), each reading one
/// capture and writing `outside_out.pcap` / `inside_out.pcap`, and the peer 198.18.0.2 as a
/// static neighbour; each test adds what differs.
pub struct PcapGateway {
    tag: &'static str,
    dir: std::path::PathBuf,
    db: std::path::PathBuf,
    rx: [&'static str; 2],
    outside: &'static str,
    exception_rx: Option<&'static str>,
    extra: String,
}

impl PcapGateway {
    /// Reading `outside_rx` and `inside_rx` (file names in `dir`), with the database `db`.
    pub fn new(
        tag: &'static str,
        dir: &Path,
        db: &Path,
        outside_rx: &'static str,
        inside_rx: &'static str,
    ) -> Self {
        PcapGateway {
            tag,
            dir: dir.to_path_buf(),
            db: db.to_path_buf(),
            rx: [outside_rx, inside_rx],
            outside: r#""198.18.0.1/24""#,
            exception_rx: None,
            extra: String::new(),
        }
    }

    /// The outside port's addresses instead of 198.18.0.1/24 (TOML strings, comma-separated).
    pub fn outside_addresses(mut self, toml: &'static str) -> Self {
        self.outside = toml;
        self
    }

    /// An exception device (`net_pcap2`) reading `rx` and writing `host_out.pcap`.
    pub fn exception(mut self, rx: &'static str) -> Self {
        self.exception_rx = Some(rx);
        self
    }

    /// A static route.
    pub fn route(mut self, prefix: &str, via: &str) -> Self {
        self.extra += &format!("[[routes]]\nprefix = \"{prefix}\"\nvia = \"{via}\"\n");
        self
    }

    /// A static neighbour.
    pub fn neighbor(mut self, ip: &str, mac: &str, port: &str) -> Self {
        self.extra += &format!("[[neighbors]]\nip = \"{ip}\"\nmac = \"{mac}\"\nport = \"{port}\"\n");
        self
    }

    /// Writes the configuration to `espd.toml` in the directory, and returns its path.
    pub fn write(&self) -> std::path::PathBuf {
        let d = self.dir.display();
        let vdev = |n: usize, rx: &str, tx: &str| {
            format!(r#", "--vdev", "net_pcap{n},rx_pcap={d}/{rx},tx_pcap={d}/{tx}""#)
        };
        let mut vdevs = vdev(0, self.rx[0], "outside_out.pcap") + &vdev(1, self.rx[1], "inside_out.pcap");
        let mut exception = String::new();
        if let Some(rx) = self.exception_rx {
            vdevs += &vdev(2, rx, "host_out.pcap");
            exception = "[exception]\ndevice = \"net_pcap2\"\nport = \"outside\"\nsetup = false\n".into();
        }
        let cfg = format!(
            r#"
eal = [{eal}{vdevs}]
[dataplane]
stats_interval = 0
[sadb]
path = "{db}"
[[ports]]
name = "outside"
device = "net_pcap0"
role = "outside"
addresses = [{outside}]
[[ports]]
name = "inside"
device = "net_pcap1"
role = "inside"
addresses = ["198.18.1.1/24"]
{exception}[[neighbors]]
ip = "198.18.0.2"
mac = "02:00:00:00:00:02"
port = "outside"
{extra}"#,
            eal = pcap_eal(self.tag),
            db = self.db.display(),
            outside = self.outside,
            extra = self.extra,
        );
        let path = self.dir.join("espd.toml");
        std::fs::write(&path, cfg).unwrap();
        path
    }
}

/// What one espctl command printed, and its exit status.
pub struct EspctlOutput {
    /// 0 on success, 1 on a refused operation, 2 on a bad argument.
    pub code: u8,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `espctl --sadb DB ARGS...` in this process, through the espctl library's entry.
pub fn espctl(db: &Path, args: &[&str]) -> EspctlOutput {
    let mut argv: Vec<std::ffi::OsString> = vec!["espctl".into(), "--sadb".into(), db.into()];
    argv.extend(args.iter().map(std::ffi::OsString::from));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = ::espctl::run(argv, &mut stdout, &mut stderr);
    EspctlOutput { code, stdout, stderr }
}

/// Runs `espd --config CFG --idle-exit-ms IDLE --json`, asserts it exits cleanly, returns
/// its report.
pub fn run_espd(cfg: &Path, idle_ms: u32) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(cfg)
        .args(["--idle-exit-ms", &idle_ms.to_string(), "--json"])
        .output()
        .expect("espd runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "espd failed: {stderr}");
    parse_report(&stdout, &stderr)
}
