//! Two workers, one SA: the SA's packets arrive on both RX queues (net_pcap with two RX
//! files), so both workers see them. Inbound frames for an SA another worker owns are handed
//! to the owner, so its replay window has a single writer: every packet is accepted once,
//! with no replay false positive, and the one duplicate injected is dropped. Outbound, both
//! workers reserve sequence numbers from the SA database: every number on the wire is unique.
//! (The ESP input is made with our own engine: this test is about concurrency, not interop;
//! gw_pcap and gw_matrix check the bytes against scapy.)

use std::fs::File;

use esp::crypto::{rust::RustBackend, CipherAlgorithm, CounterIvSource, CryptoParams, IntegrityAlgorithm};
use esp::sa::{EspMode, TunnelEndpoints};
use esp::{OutboundSa, PacketBuffer, VecBuffer};
use espd::pcap;
use sadb::*;

mod common;
use common::{gcm_sa, out_policy, run_espd};

const KEY_IN: [u8; 20] = [7; 20];
const N: usize = 400;

fn checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4/UDP packet (UDP checksum 0: allowed for IPv4).
fn ipv4_udp(src: [u8; 4], dst: [u8; 4], id: u16, payload: usize) -> Vec<u8> {
    let total = 20 + 8 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&7u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (id as usize + i) as u8;
    }
    p
}

fn eth(dst: [u8; 6], src: [u8; 6], l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + l3.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(l3);
    f
}

fn write(path: &std::path::Path, frames: &[Vec<u8>]) {
    pcap::write_all(&mut File::create(path).unwrap(), frames.iter().map(Vec::as_slice)).unwrap();
}

#[test]
fn one_sa_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const GW_OUT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
    const GW_IN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const HOST: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x10];

    // The peer's ESP for SA 0x1000, sequence 1..=N, alternating between the two RX queues,
    // plus a copy of packet 10 on the other queue.
    let crypto = CryptoParams {
        cipher: CipherAlgorithm::AesGcm128,
        integrity: IntegrityAlgorithm::None,
        cipher_key: KEY_IN.to_vec().into(),
        auth_key: Vec::new().into(),
    };
    let tunnel = EspMode::Tunnel(TunnelEndpoints {
        src: "198.18.0.2".parse().unwrap(),
        dst: "198.18.0.1".parse().unwrap(),
    });
    let mut peer = OutboundSa::new(
        &esp::SaConfig::new(0x1000, crypto, tunnel),
        &RustBackend,
        Box::new(CounterIvSource { next: 1, fixed: None }),
    )
    .unwrap();
    let (mut q0, mut q1) = (Vec::new(), Vec::new());
    let mut inners = Vec::new();
    for i in 0..N {
        let inner = ipv4_udp([198, 19, 1, 10], [198, 18, 1, 10], i as u16, 40 + i % 900);
        let mut b = VecBuffer::new(&inner);
        esp::encap(&mut peer, &mut b).unwrap();
        let f = eth(GW_OUT_MAC, PEER, b.data());
        if i == 9 {
            q1.push(f.clone());
        }
        if i % 2 == 0 {
            q0.push(f)
        } else {
            q1.push(f)
        }
        inners.push(inner);
    }
    write(&d.join("esp_q0.pcap"), &q0);
    write(&d.join("esp_q1.pcap"), &q1);
    // Plaintext for the outbound SA, also over both queues.
    let plain: Vec<Vec<u8>> = (0..N)
        .map(|i| eth(GW_IN_MAC, HOST, &ipv4_udp([198, 18, 1, 10], [198, 19, 1, 10], i as u16, 100)))
        .collect();
    write(&d.join("plain_q0.pcap"), &plain.iter().step_by(2).cloned().collect::<Vec<_>>());
    write(&d.join("plain_q1.pcap"), &plain.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>());

    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 64, policies: 8, readers: 8, ..Capacities::default() })
            .unwrap();
    {
        let mut w = region.writer().unwrap();
        w.add_sa(&gcm_sa(
            0x1000,
            Direction::In,
            SaMode::Tunnel,
            [198, 18, 0, 2],
            [198, 18, 0, 1],
            &KEY_IN,
            1024,
        ))
        .unwrap();
        w.add_sa(&gcm_sa(
            0x2000,
            Direction::Out,
            SaMode::Tunnel,
            [198, 18, 0, 1],
            [198, 18, 0, 2],
            &[9; 20],
            1024,
        ))
        .unwrap();
        w.add_policy(&out_policy(1, Action::Protect, 1, ([198, 18, 1, 0], 24), ([198, 19, 1, 0], 24)))
            .unwrap();
    }
    drop(region);
    let p = |n: &str| d.join(n).display().to_string();
    let cfg = format!(
        r#"
eal = ["--lcores", "0@0,1@1,2@0", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
       "--log-level", "error", "--file-prefix", "espd-workers-{pid}",
       "--vdev", "net_pcap0,rx_pcap={e0},rx_pcap={e1},tx_pcap={o0},tx_pcap={o1}",
       "--vdev", "net_pcap1,rx_pcap={p0},rx_pcap={p1},tx_pcap={i0},tx_pcap={i1}"]
[dataplane]
stats_interval = 0
rss = false
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
        e0 = p("esp_q0.pcap"),
        e1 = p("esp_q1.pcap"),
        o0 = p("out_q0.pcap"),
        o1 = p("out_q1.pcap"),
        p0 = p("plain_q0.pcap"),
        p1 = p("plain_q1.pcap"),
        i0 = p("in_q0.pcap"),
        i1 = p("in_q1.pcap"),
        db = db.display()
    );
    std::fs::write(d.join("espd.toml"), cfg).unwrap();
    let report = run_espd(&d.join("espd.toml"), 1500);
    let c = &report["counters"];
    assert_eq!(
        c["decap-packets"].as_u64(),
        Some(N as u64),
        "every packet accepted once, no replay false positive: {report}"
    );
    assert_eq!(c["drop-replay"].as_u64(), Some(1), "the one duplicate: {report}");
    assert!(c["handed-off"].as_u64().unwrap_or(0) > 0, "the non-owner worker handed frames over: {report}");
    assert_eq!(c["encap-packets"].as_u64(), Some(N as u64), "{report}");

    // Every inner packet reached the inside, once.
    let mut delivered: Vec<Vec<u8>> = ["in_q0.pcap", "in_q1.pcap"]
        .iter()
        .flat_map(|f| pcap::read_all(&mut File::open(d.join(f)).unwrap()).unwrap())
        .map(|f| f[14..].to_vec())
        .collect();
    delivered.sort();
    inners.sort();
    assert_eq!(delivered, inners);

    // Outbound sequence numbers: unique across the two workers, 1..=N.
    let mut seqs: Vec<u32> = ["out_q0.pcap", "out_q1.pcap"]
        .iter()
        .flat_map(|f| pcap::read_all(&mut File::open(d.join(f)).unwrap()).unwrap())
        .map(|f| u32::from_be_bytes(f[14 + 20 + 4..14 + 20 + 8].try_into().unwrap()))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=N as u32).collect::<Vec<_>>());
}
