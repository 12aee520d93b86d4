//! Pcap-driven gateway test: scapy writes plaintext for the inside port and ESP (with a
//! replay, a tampered ICV and an unknown SPI) for the outside port; espd, keyed by hand in
//! its SA database, encrypts and decrypts; scapy decrypts espd's ESP and compares every inner
//! packet; espd's counters must show each drop under its reason.

mod common;

use std::process::Command;

#[test]
fn esp_both_ways_through_pcaps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = common::scapy(d, "make", &[]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let db = d.join("sadb");
    common::create_sadb(&db);

    let eal = common::pcap_gateway_eal(
        &format!("espd-gw-pcap-{}", std::process::id()),
        format!("net_pcap0,rx_pcap={d}/outside_in.pcap,tx_pcap={d}/outside_out.pcap", d = d.display()),
        format!("net_pcap1,rx_pcap={d}/inside_in.pcap,tx_pcap={d}/inside_out.pcap", d = d.display()),
    );
    let cfg_path = d.join("espd.toml");
    std::fs::write(&cfg_path, common::gateway_config(&eal, "net_pcap0", "net_pcap1", &db, 0.0)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(&cfg_path)
        .args(["--idle-exit-ms", "800", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "espd failed: {stderr}");
    let report = common::parse_report(&String::from_utf8_lossy(&out.stdout), &stderr);
    common::assert_counters(&report);

    common::scapy_check(d, &[]);

    common::assert_sadb(&db);
}
