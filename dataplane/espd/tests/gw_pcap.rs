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

    // Byte counters count the protected packets themselves (the inner IP packets), as the
    // peer's do: what went into the tunnel from the inside, and what came out of it.
    let ip_bytes = |name: &str| -> u64 {
        let frames = espd::pcap::read_all(&mut std::fs::File::open(d.join(name)).unwrap()).unwrap();
        frames
            .iter()
            .map(|f| match f[14] >> 4 {
                4 => u64::from(u16::from_be_bytes([f[16], f[17]])),
                _ => 40 + u64::from(u16::from_be_bytes([f[18], f[19]])),
            })
            .sum()
    };
    let region = sadb::Region::attach(&db).unwrap();
    let sas = region.list_sas();
    let bytes = |spi: u32| sas.iter().find(|e| e.config.spi == spi).unwrap().stats.bytes;
    assert_eq!(bytes(0x2000), ip_bytes("inside_in.pcap"), "outbound bytes: the plaintext packets sent");
    assert_eq!(bytes(0x1000), ip_bytes("inside_out.pcap"), "inbound bytes: the packets decapsulated");
}
