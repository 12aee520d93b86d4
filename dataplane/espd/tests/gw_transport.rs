//! Transport mode through the gateway: the gateway's own traffic (its host stack, reached
//! through the exception port, here a third pcap device) is protected in transport mode
//! between the two gateways, and transport-mode ESP addressed to the gateway is decrypted and
//! delivered to the host stack. scapy makes the input and checks the output.

use std::process::Command;

use sadb::*;

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn transport_sa(spi: u32, dir: Direction, src: [u8; 4], dst: [u8; 4], key: std::ops::Range<u8>) -> SaConfig {
    let key: Vec<u8> = key.collect();
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 1;
    c.direction = dir as u8;
    c.mode = Mode::Transport as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.cipher_key[..16].copy_from_slice(&key[..16]);
    c.salt.copy_from_slice(&key[16..20]);
    c.replay_window = 64;
    c.src = v4(src);
    c.dst = v4(dst);
    c.dscp = 0xff;
    c
}

fn python(dir: &std::path::Path, what: &str) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/gw_transport.py"))
        .arg(what)
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn gateway_own_traffic_in_transport_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = python(d, "make");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    espd::pcap::write_all(&mut std::fs::File::create(d.join("empty.pcap")).unwrap(), std::iter::empty())
        .unwrap();
    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 64, policies: 8, readers: 8, ..Capacities::default() })
            .unwrap();
    {
        let mut w = region.writer().unwrap();
        w.add_sa(&transport_sa(0x3000, Direction::Out, [198, 18, 0, 1], [198, 18, 0, 2], 40..60)).unwrap();
        w.add_sa(&transport_sa(0x3001, Direction::In, [198, 18, 0, 2], [198, 18, 0, 1], 60..80)).unwrap();
        w.add_policy(&PolicyConfig {
            id: 1,
            priority: 1,
            reqid: 1,
            direction: Direction::Out as u8,
            action: Action::Protect as u8,
            family: 4,
            proto: 17,
            src: v4([198, 18, 0, 1]),
            dst: v4([198, 18, 0, 2]),
            src_plen: 32,
            dst_plen: 32,
            _pad: [0; 2],
            sport: [0, 65535],
            dport: [1701, 1701],
            _pad2: 0,
        })
        .unwrap();
    }
    drop(region);
    let cfg = format!(
        r#"
eal = ["-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry", "--log-level", "error",
       "--file-prefix", "espd-transport-{pid}",
       "--vdev", "net_pcap0,rx_pcap={d}/outside_in.pcap,tx_pcap={d}/outside_out.pcap",
       "--vdev", "net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/inside_out.pcap",
       "--vdev", "net_pcap2,rx_pcap={d}/host_in.pcap,tx_pcap={d}/host_out.pcap"]
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
[exception]
device = "net_pcap2"
port = "outside"
[[neighbors]]
ip = "198.18.0.2"
mac = "02:00:00:00:00:02"
port = "outside"
"#,
        pid = std::process::id(),
        d = d.display(),
        db = db.display()
    );
    std::fs::write(d.join("espd.toml"), cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(d.join("espd.toml"))
        .args(["--idle-exit-ms", "800", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let c = &report["counters"];
    assert_eq!((c["encap-packets"].as_u64(), c["decap-packets"].as_u64()), (Some(6), Some(6)), "{report}");
    let checked = python(d, "check");
    assert!(
        checked.status.success(),
        "{}{}\n{report}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
