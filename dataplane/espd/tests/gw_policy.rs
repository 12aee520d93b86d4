//! Policy verdicts through the gateway: protect with no SA yet (a rate-limited acquire event
//! for the control side, counted drops), discard (counted drops), bypass (forwarded as is).

use std::fs::File;
use std::process::Command;

use espd::pcap;
use sadb::*;

mod common;
use common::{out_policy, run_espd, PcapGateway};

fn udp_frame(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28 + 20];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0x0a, 0x10]);
    f[12..14].copy_from_slice(&[8, 0]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&48u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let mut s: u32 = ip[..20].chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    ip[20..22].copy_from_slice(&4000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&dport.to_be_bytes());
    ip[24..26].copy_from_slice(&28u16.to_be_bytes());
    f
}

#[test]
fn acquire_discard_bypass() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const GW_IN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
    let mut frames = Vec::new();
    for i in 0..5 {
        frames.push(udp_frame(GW_IN_MAC, [198, 18, 1, 10], [198, 19, 1, 10], 1000 + i)); // protect, no SA
        frames.push(udp_frame(GW_IN_MAC, [198, 18, 1, 10], [198, 19, 2, 10], 2000 + i)); // discard
        frames.push(udp_frame(GW_IN_MAC, [198, 18, 1, 10], [198, 19, 3, 10], 3000 + i));
        // bypass
    }
    pcap::write_all(&mut File::create(d.join("inside_in.pcap")).unwrap(), frames.iter().map(Vec::as_slice))
        .unwrap();
    pcap::write_all(&mut File::create(d.join("empty.pcap")).unwrap(), std::iter::empty()).unwrap();
    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 64, policies: 8, readers: 8, ..Capacities::default() })
            .unwrap();
    region
        .writer()
        .unwrap()
        .add_policies(&[
            out_policy(1, Action::Protect, 9, ([198, 18, 1, 0], 24), ([198, 19, 1, 0], 24)),
            out_policy(2, Action::Discard, 0, ([198, 18, 1, 0], 24), ([198, 19, 2, 0], 24)),
            out_policy(3, Action::Bypass, 0, ([198, 18, 1, 0], 24), ([198, 19, 3, 0], 24)),
        ])
        .unwrap();
    let cfg = PcapGateway::new("policy", d, &db, "empty.pcap", "inside_in.pcap")
        .route("198.19.0.0/16", "198.18.0.2")
        .write();
    let report = run_espd(&cfg, 800);
    let c = &report["counters"];
    assert_eq!(c["drop-no-sa-acquire"].as_u64(), Some(5), "{report}");
    assert_eq!(c["acquires"].as_u64(), Some(1), "rate-limited to one per policy per second: {report}");
    assert_eq!(c["drop-policy-discard"].as_u64(), Some(5), "{report}");
    assert_eq!(c["bypass-packets"].as_u64(), Some(5), "{report}");

    // The bypassed packets left by the outside port unchanged but for Ethernet.
    let sent = pcap::read_all(&mut File::open(d.join("outside_out.pcap")).unwrap()).unwrap();
    let bypassed: Vec<&Vec<u8>> = frames.iter().filter(|f| f[14 + 18] == 3).collect();
    assert_eq!(sent.len(), 5);
    for (s, f) in sent.iter().zip(bypassed) {
        assert_eq!(&s[14..], &f[14..]);
        assert_eq!(&s[..6], &[2, 0, 0, 0, 0, 2], "to the next hop's MAC");
    }

    // The control side finds the acquire in the region.
    let region = Region::attach(&db).unwrap();
    let mut events = Vec::new();
    region.writer().unwrap().drain_events(|_, e| events.push(e));
    assert_eq!(events.len(), 1);
    let e = events[0];
    assert_eq!(
        (EventKind::from_code(e.kind), e.reqid, e.policy, e.proto, e.dport),
        (Some(EventKind::Acquire), 9, 1, 17, 1000)
    );
    assert_eq!((&e.src[..4], &e.dst[..4]), (&[198, 18, 1, 10][..], &[198, 19, 1, 10][..]));
}

#[test]
fn missing_device_or_lcore_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("sadb");
    let base = |lcores: &str, inside_dev: &str| {
        format!(
            r#"
eal = ["-l", "{lcores}", "--no-pci", "--no-huge", "-m", "128", "--no-shconf", "--no-telemetry", "--log-level", "error",
       "--file-prefix", "espd-err-{pid}", "--vdev", "net_null0", "--vdev", "net_null1"]
[sadb]
path = "{db}"
[[ports]]
name = "outside"
device = "net_null0"
role = "outside"
[[ports]]
name = "inside"
device = "{inside_dev}"
role = "inside"
"#,
            pid = std::process::id(),
            db = db.display()
        )
    };
    let run = |text: String| {
        std::fs::write(d.join("espd.toml"), text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_espd"))
            .arg("--config")
            .arg(d.join("espd.toml"))
            .args(["--duration", "1"])
            .output()
            .unwrap()
    };
    let out = run(base("0,1", "net_null7"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ports[1].device: no DPDK port named \"net_null7\""), "{err}");
    let out = run(base("0", "net_null1"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no worker lcore"), "{err}");
    // And a good one starts and stops cleanly.
    let out = run(base("0,1", "net_null1"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
