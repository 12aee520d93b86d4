//! How the gateway names an SA and what an SA admits, with scapy on the other side
//! (`scapy/gw_sa_keys.py`):
//! - two outbound SAs towards two peers that chose the same SPI both carry their own traffic,
//!   each stream encrypted with its own peer's key;
//! - a transport-mode inbound SA admits only what was negotiated: packets that decrypt fine
//!   but carry another outer source or destination, protocol, source or destination port
//!   are dropped as selector mismatches.

use std::path::Path;
use std::process::Command;

use sadb::*;

mod common;
use common::{gcm_sa, key, out_policy, run_espd, v4, PcapGateway};

fn scapy(test: &str, command: &str, dir: &Path) {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/gw_sa_keys.py"))
        .args([test, command])
        .arg(dir)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it with scapy)");
    assert!(
        out.status.success(),
        "gw_sa_keys.py {test} {command}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn empty_pcap(d: &Path) {
    espd::pcap::write_all(&mut std::fs::File::create(d.join("empty.pcap")).unwrap(), std::iter::empty())
        .unwrap();
}

/// Peers 198.18.0.2 and 198.18.0.3 both chose SPI 0x5150 for the SA we send them on. Host A's
/// traffic to the network behind each goes out on its own SA: scapy decrypts each stream with
/// its peer's key (the other key fails) and finds every packet, numbered from 1 on each SA.
#[test]
fn two_peers_with_the_same_outbound_spi_each_get_their_own_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scapy("shared-spi", "make", d);
    empty_pcap(d);
    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 64, policies: 8, readers: 8, ..Capacities::default() })
            .unwrap();
    let peers = [
        ([198, 18, 0, 2], [198, 19, 1, 0], 1, key(100..116, [1; 4])),
        ([198, 18, 0, 3], [198, 19, 2, 0], 2, key(200..216, [2; 4])),
    ];
    {
        let mut w = region.writer().unwrap();
        for (peer, net, reqid, k) in &peers {
            let mut sa = gcm_sa(0x5150, Direction::Out, SaMode::Tunnel, [198, 18, 0, 1], *peer, k, 64);
            sa.reqid = *reqid;
            w.add_sa(&sa).unwrap();
            w.add_policy(&out_policy(*reqid, Action::Protect, *reqid, ([198, 18, 1, 0], 24), (*net, 24)))
                .unwrap();
        }
        // The same SPI towards peer 1 again is a duplicate, and leaves both SAs alone.
        let mut dup = gcm_sa(
            0x5150,
            Direction::Out,
            SaMode::Tunnel,
            [198, 18, 0, 1],
            [198, 18, 0, 2],
            &key(0..16, [3; 4]),
            64,
        );
        dup.reqid = 3;
        assert!(matches!(w.add_sa(&dup), Err(SadbError::Duplicate { .. })));
    }
    drop(region);
    let cfg = PcapGateway::new("shared-spi", d, &db, "empty.pcap", "inside_in.pcap")
        .route("198.19.1.0/24", "198.18.0.2")
        .route("198.19.2.0/24", "198.18.0.3")
        .neighbor("198.18.0.3", "02:00:00:00:00:03", "outside")
        .write();
    let report = run_espd(&cfg, 800);
    assert_eq!(report["counters"]["encap-packets"].as_u64(), Some(21), "{report}");
    scapy("shared-spi", "check", d);
    // Each SA counted its own stream.
    let region = Region::attach(&db).unwrap();
    let mut per_peer: Vec<([u8; 16], u64, u64)> =
        region.list_sas().iter().map(|e| (e.config.dst, e.stats.packets, e.stats.seq)).collect();
    per_peer.sort_unstable();
    assert_eq!(per_peer, vec![(v4([198, 18, 0, 2]), 12, 12), (v4([198, 18, 0, 3]), 9, 9)]);
}

/// An inbound transport-mode SA for L2TP (UDP 1701 to 1701) between the peer 198.18.0.2 and
/// the gateway 198.18.0.1 (which has a second address, 198.18.0.5, on the same port). Seven
/// packets that all decrypt: the first and last conform and reach the host stack; the five
/// between break one selector field each and are dropped as selector mismatches.
#[test]
fn transport_mode_admits_only_the_negotiated_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scapy("transport", "make", d);
    empty_pcap(d);
    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 64, policies: 8, readers: 8, ..Capacities::default() })
            .unwrap();
    {
        let mut w = region.writer().unwrap();
        let mut sa = gcm_sa(
            0x3101,
            Direction::In,
            SaMode::Transport,
            [198, 18, 0, 2],
            [198, 18, 0, 1],
            &key(60..76, [9; 4]),
            64,
        );
        let host = |a: [u8; 4]| Selector {
            addr_start: v4(a),
            addr_end: v4(a),
            family: 4,
            proto: 17,
            port_start: 1701,
            port_end: 1701,
            ..Default::default()
        };
        (sa.ts_local, sa.ts_remote) = (host([198, 18, 0, 1]), host([198, 18, 0, 2]));
        w.add_sa(&sa).unwrap();
    }
    drop(region);
    let cfg = PcapGateway::new("transport-sel", d, &db, "outside_in.pcap", "empty.pcap")
        .outside_addresses(r#""198.18.0.1/24", "198.18.0.5/24""#)
        .exception("empty.pcap")
        .write();
    let report = run_espd(&cfg, 800);
    let c = &report["counters"];
    assert_eq!(c["decap-packets"].as_u64(), Some(2), "{report}");
    assert_eq!(c["drop-selector-mismatch"].as_u64(), Some(5), "{report}");
    scapy("transport", "check", d);
    let region = Region::attach(&db).unwrap();
    let sa = region.list_sas().into_iter().find(|e| e.config.spi == 0x3101).unwrap();
    assert_eq!(sa.stats.packets, 2);
    assert_eq!(sa.stats.drops[esp::DropReason::SelectorMismatch as usize], 5);
    // All seven passed the ICV and the replay window: the last is the highest seen.
    assert_eq!(sa.stats.seq, 7);
}

/// espctl names an outbound SA by SPI and destination: two with one SPI install side by
/// side; `sa del` without `--dst` is refused in one line while it could mean either, and
/// with `--dst` deletes that one only.
#[test]
fn espctl_names_an_outbound_sa_by_spi_and_destination() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    let espctl = |args: &[&str]| common::espctl(&db, args);
    let ok = |args: &[&str]| {
        let o = espctl(args);
        assert_eq!(o.code, 0, "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    ok(&["create", "--sas", "64", "--policies", "8", "--readers", "2", "--json"]);
    let key = "00112233445566778899aabbccddeeff01020304";
    for (peer, reqid) in [("198.18.0.2", "1"), ("198.18.0.3", "2")] {
        let add = [
            "sa",
            "add",
            "--spi",
            "0x5150",
            "--dir",
            "out",
            "--src",
            "198.18.0.1",
            "--dst",
            peer,
            "--enc",
            "aes128gcm16",
            "--enc-key",
            key,
            "--reqid",
            reqid,
            "--json",
        ];
        ok(&add);
    }
    let listed = ok(&["sa", "list", "--json"]);
    let mut dsts: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["dst"].as_str().unwrap()).collect();
    dsts.sort_unstable();
    assert_eq!(dsts, ["198.18.0.2", "198.18.0.3"]);
    let o = espctl(&["sa", "del", "--spi", "0x5150", "--dir", "out"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.code, 1, "{err}");
    assert!(err.lines().count() == 1 && err.contains("name the destination"), "{err:?}");
    assert_eq!(ok(&["sa", "list", "--json"]).as_array().unwrap().len(), 2, "nothing deleted");
    ok(&["sa", "del", "--spi", "0x5150", "--dir", "out", "--dst", "198.18.0.2", "--json"]);
    let left = ok(&["sa", "list", "--json"]);
    let left = left.as_array().unwrap();
    assert_eq!(
        (left.len(), left[0]["dst"].as_str(), left[0]["reqid"].as_u64()),
        (1, Some("198.18.0.3"), Some(2))
    );
    // One left: the SPI alone names it.
    ok(&["sa", "del", "--spi", "0x5150", "--dir", "out", "--json"]);
    assert_eq!(ok(&["sa", "list", "--json"]), serde_json::json!([]));
}
