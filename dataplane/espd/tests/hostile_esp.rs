//! Hostile ESP against a running espd, keyed by hand with espctl (no IKE): replayed packets,
//! flipped bits (IV, ciphertext, ICV, sequence number, SPI), unknown SPIs, ESP for an SA
//! deleted before the run, truncated packets (short ESP payloads, runts, frames cut short
//! of their IPv4 length), a zero SPI and oversize frames, interleaved with the peer's
//! legitimate traffic (`scapy/hostile_esp.py` makes it). While espd runs, `espctl stats
//! --json` must show every hostile packet under its drop reason and nothing else dropped;
//! espd's final report must agree; scapy must find every legitimate packet delivered (in
//! order) and every outbound one encrypted; the SA's own counters must agree too.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn espctl(db: &Path, args: &[&str]) -> common::EspctlOutput {
    let o = common::espctl(db, args);
    assert_eq!(o.code, 0, "espctl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn espctl_json(db: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_slice(&espctl(db, &a).stdout).unwrap()
}

fn hex(bytes: impl IntoIterator<Item = u8>) -> String {
    bytes.into_iter().map(|b| format!("{b:02x}")).collect()
}

/// The SA database of `hostile_esp.py`'s keys, through espctl: SPI 0x2000 out, 0x1000 in,
/// and 0x1001 in, installed and deleted again.
fn key_by_hand(db: &Path) {
    espctl_json(db, &["create", "--sas", "64", "--policies", "16", "--readers", "8"]);
    let sa = |spi: &str, dir: &str, src: &str, dst: &str, key: String| {
        let mut a = vec![
            "sa",
            "add",
            "--spi",
            spi,
            "--dir",
            dir,
            "--src",
            src,
            "--dst",
            dst,
            "--enc",
            "aes128gcm16",
            "--enc-key",
            &key,
            "--reqid",
            "1",
        ];
        if dir == "in" {
            a.extend([
                "--replay-window",
                "64",
                "--local-ts",
                "198.18.1.0/24",
                "--remote-ts",
                "198.19.1.0/24",
            ]);
        }
        espctl_json(db, &a);
    };
    sa("0x2000", "out", "198.18.0.1", "198.18.0.2", hex((0..16).chain([1, 2, 3, 4])));
    sa("0x1000", "in", "198.18.0.2", "198.18.0.1", hex((16..32).chain([5, 6, 7, 8])));
    sa("0x1001", "in", "198.18.0.2", "198.18.0.1", hex((32..48).chain([9, 10, 11, 12])));
    espctl_json(
        db,
        &[
            "policy",
            "add",
            "--id",
            "1",
            "--dir",
            "out",
            "--src",
            "198.18.1.0/24",
            "--dst",
            "198.19.1.0/24",
            "--action",
            "protect",
            "--reqid",
            "1",
        ],
    );
    espctl_json(db, &["sa", "del", "--spi", "0x1001", "--dir", "in"]);
}

fn counters(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object().unwrap().iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap())).collect()
}

#[test]
fn hostile_esp_is_dropped_under_its_reason_and_legitimate_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/hostile_esp.py");
    let made = Command::new("python3").arg(script).arg("make").arg(d).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let expect: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("expect.json")).unwrap()).unwrap();
    let want = counters(&expect["counters"]);
    let frames = expect["outside_frames"].as_u64().unwrap() + expect["sent"]["legit_out"].as_u64().unwrap();

    let db = d.join("sadb");
    key_by_hand(&db);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&db).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "espctl creates the SA database owner-only: it holds keys");
    let eal = common::pcap_gateway_eal(
        &format!("espd-hostile-{}", std::process::id()),
        format!("net_pcap0,rx_pcap={d}/outside_in.pcap,tx_pcap={d}/outside_out.pcap", d = d.display()),
        format!("net_pcap1,rx_pcap={d}/inside_in.pcap,tx_pcap={d}/inside_out.pcap", d = d.display()),
    );
    let cfg = d.join("espd.toml");
    std::fs::write(&cfg, common::gateway_config(&eal, "net_pcap0", "net_pcap1", &db, 0.0)).unwrap();
    let espd = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(&cfg)
        .args(["--idle-exit-ms", "1500", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Live, from another process: the dataplane's counters once every frame is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        let s = espctl_json(&db, &["stats"]);
        let total = counters(&s["total"]);
        if total.get("rx-packets").copied().unwrap_or(0) >= frames
            && total.get("encap-packets") == want.get("encap-packets")
            && total.get("decap-packets") == want.get("decap-packets")
        {
            break total;
        }
        assert!(Instant::now() < deadline, "espd did not take every frame in 30 s: {s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = espd.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "espd failed: {stderr}");
    let report = common::parse_report(&String::from_utf8_lossy(&out.stdout), &stderr);

    println!("sent: {}", expect["sent"]);
    let drops: BTreeMap<&String, &u64> = live.iter().filter(|(k, _)| k.starts_with("drop-")).collect();
    println!("espctl stats --json drops: {drops:?}");
    for (name, n) in &want {
        assert_eq!(live.get(name), Some(n), "{name} (espctl stats --json): {live:?}");
        assert_eq!(report["counters"][name].as_u64(), Some(*n), "{name} (espd report): {report}");
    }
    for (name, n) in &live {
        if name.starts_with("drop-") {
            assert!(want.contains_key(name), "unexpected drops {name} = {n}: {live:?}");
        }
    }
    assert_eq!(live["rx-packets"], frames, "{live:?}");

    let checked = Command::new("python3").arg(script).arg("check").arg(d).output().unwrap();
    let text = String::from_utf8_lossy(&checked.stdout);
    println!("{text}");
    assert!(
        checked.status.success(),
        "scapy check failed:\n{text}{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // The SA's own counters: what it accepted and what it refused (the engine's reasons).
    let sas = espctl_json(&db, &["sa", "list"]);
    let inbound = sas.as_array().unwrap().iter().find(|s| s["spi"] == "0x00001000").unwrap();
    assert_eq!(inbound["packets"], want["decap-packets"], "{inbound}");
    for reason in ["replay", "auth", "bad-length"] {
        assert_eq!(
            inbound["drops"][reason].as_u64(),
            want.get(&format!("drop-{reason}")).copied(),
            "{inbound}"
        );
    }
    assert_eq!(sas.as_array().unwrap().len(), 2, "the deleted SA stays deleted: {sas}");
}
