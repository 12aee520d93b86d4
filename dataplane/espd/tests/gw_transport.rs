//! Transport mode through the gateway: the gateway's own traffic (its host stack, reached
//! through the exception port, here a third pcap device) is protected in transport mode
//! between the two gateways, and transport-mode ESP addressed to the gateway is decrypted and
//! delivered to the host stack. scapy makes the input and checks the output.

use std::process::Command;

use sadb::*;

mod common;
use common::{gcm_sa, run_espd, v4, PcapGateway};

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
        let key = |r: std::ops::Range<u8>| r.collect::<Vec<u8>>();
        w.add_sa(&gcm_sa(
            0x3000,
            Direction::Out,
            SaMode::Transport,
            [198, 18, 0, 1],
            [198, 18, 0, 2],
            &key(40..60),
            64,
        ))
        .unwrap();
        w.add_sa(&gcm_sa(
            0x3001,
            Direction::In,
            SaMode::Transport,
            [198, 18, 0, 2],
            [198, 18, 0, 1],
            &key(60..80),
            64,
        ))
        .unwrap();
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
    let cfg = PcapGateway::new("transport", d, &db, "outside_in.pcap", "empty.pcap")
        .exception("host_in.pcap")
        .write();
    let report = run_espd(&cfg, 800);
    let c = &report["counters"];
    assert_eq!((c["encap-packets"].as_u64(), c["decap-packets"].as_u64()), (Some(6), Some(6)), "{report}");
    // The ports' byte counters are the frames' bytes in the captures they read and wrote (the
    // exception device's are not a port's).
    let bytes = |files: &[&str]| -> u64 {
        let frames = |f: &&str| espd::pcap::read_all(&mut std::fs::File::open(d.join(f)).unwrap()).unwrap();
        files.iter().flat_map(frames).map(|p| p.len() as u64).sum()
    };
    let (rx, tx) = (bytes(&["outside_in.pcap"]), bytes(&["outside_out.pcap", "inside_out.pcap"]));
    assert!(rx > 0 && tx > 0);
    assert_eq!((c["rx-bytes"].as_u64(), c["tx-bytes"].as_u64()), (Some(rx), Some(tx)), "{report}");
    let checked = python(d, "check");
    assert!(
        checked.status.success(),
        "{}{}\n{report}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
