//! Pcap-driven gateway test: scapy writes plaintext for the inside port and ESP (with a
//! replay, a tampered ICV and an unknown SPI) for the outside port; espd, keyed by hand in
//! its SA database, encrypts and decrypts; scapy decrypts espd's ESP and compares every inner
//! packet; espd's counters must show each drop under its reason.

use std::path::Path;
use std::process::Command;

use sadb::*;

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn gcm(spi: u32, dir: Direction, src: [u8; 4], dst: [u8; 4], key: &[u8]) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 1;
    c.direction = dir as u8;
    c.mode = Mode::Tunnel as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.cipher_key[..16].copy_from_slice(&key[..16]);
    c.salt.copy_from_slice(&key[16..20]);
    c.replay_window = 64;
    c.src = v4(src);
    c.dst = v4(dst);
    c.dscp = 0xff;
    c.backend = Backend::IpsecMb as u8;
    if dir == Direction::In {
        c.ts_local = Selector {
            addr_start: v4([198, 18, 1, 0]),
            addr_end: v4([198, 18, 1, 255]),
            family: 4,
            port_end: u16::MAX,
            ..Default::default()
        };
        c.ts_remote = Selector {
            addr_start: v4([198, 19, 1, 0]),
            addr_end: v4([198, 19, 1, 255]),
            family: 4,
            port_end: u16::MAX,
            ..Default::default()
        };
    }
    c
}

fn python(dir: &Path, what: &str) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/gw_pcap.py"))
        .arg(what)
        .arg(dir)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it with scapy)")
}

fn key(range: std::ops::Range<u8>, salt: [u8; 4]) -> Vec<u8> {
    range.chain(salt).collect()
}

#[test]
fn esp_both_ways_through_pcaps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = python(d, "make");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 256, policies: 16, readers: 8, ..Capacities::default() })
            .unwrap();
    {
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
    drop(region);

    let cfg = format!(
        r#"
eal = ["-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry", "--log-level", "error",
       "--file-prefix", "espd-gw-pcap-{pid}",
       "--vdev", "net_pcap0,rx_pcap={d}/outside_in.pcap,tx_pcap={d}/outside_out.pcap",
       "--vdev", "net_pcap1,rx_pcap={d}/inside_in.pcap,tx_pcap={d}/inside_out.pcap"]
[dataplane]
stats_interval = 0
[sadb]
path = "{db}"
[[ports]]
name = "outside"
device = "net_pcap0"
role = "outside"
addresses = ["198.18.0.1/24"]
[[ports]]
name = "inside"
device = "net_pcap1"
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
"#,
        pid = std::process::id(),
        d = d.display(),
        db = db.display()
    );
    let cfg_path = d.join("espd.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(&cfg_path)
        .args(["--idle-exit-ms", "800", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "espd failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let c = &report["counters"];
    assert_eq!(c["encap-packets"], 40, "{report}");
    assert_eq!(c["decap-packets"], 29, "{report}");
    assert_eq!(c["drop-replay"], 1, "{report}");
    assert_eq!(c["drop-auth"], 1, "{report}");
    assert_eq!(c["drop-no-sa"], 1, "{report}");

    let checked = python(d, "check");
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "scapy check failed:\n{text}{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // The SA database saw it too: per-SA counters and the outbound sequence number.
    let region = Region::attach(&db).unwrap();
    let sas = region.list_sas();
    let out_sa = sas.iter().find(|e| e.config.spi == 0x2000).unwrap();
    let in_sa = sas.iter().find(|e| e.config.spi == 0x1000).unwrap();
    assert_eq!((out_sa.stats.packets, out_sa.stats.seq), (40, 40));
    assert_eq!((in_sa.stats.packets, in_sa.stats.seq), (29, 29));
    assert_eq!(in_sa.stats.drops[esp::DropReason::Replay as usize], 1);
    assert_eq!(in_sa.stats.drops[esp::DropReason::Auth as usize], 1);
}
