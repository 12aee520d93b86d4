//! The gateway pipeline over every algorithm espd supports × IPv4/IPv6 × plain or
//! UDP-encapsulated ESP, in one run: 36 tunnel SA pairs, each with its own policy and
//! subnets. scapy (an independent implementation) makes the input and checks the output.
//! The captures go round robin over the SAs, so every burst mixes SAs and algorithms in one
//! crypto stage.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use sadb::*;

fn addr16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => {
            let mut x = [0u8; 16];
            x[..4].copy_from_slice(&v.octets());
            x
        }
        IpAddr::V6(v) => v.octets(),
    }
}

/// `net/len` as a selector range.
fn selector(net: &str) -> Selector {
    let (a, l) = net.split_once('/').unwrap();
    let ip: IpAddr = a.parse().unwrap();
    let len: u32 = l.parse().unwrap();
    let (fam, bits) = if ip.is_ipv4() { (4, 32) } else { (6, 128) };
    let v = match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    };
    let host = if len == bits { 0 } else { (u128::MAX >> (128 - bits)) >> len };
    let to16 =
        |x: u128| if fam == 4 { addr16(IpAddr::from((x as u32).to_be_bytes())) } else { x.to_be_bytes() };
    Selector {
        addr_start: to16(v & !host),
        addr_end: to16(v | host),
        family: fam,
        port_end: u16::MAX,
        ..Default::default()
    }
}

fn sa_of(c: &serde_json::Value, dir: Direction) -> SaConfig {
    let s = |k: &str| c[k].as_str().unwrap().to_string();
    let (cipher, klen, integ, ilen) = match c["alg"].as_str().unwrap() {
        "aes128gcm16" => (Cipher::AesGcm16, 16, Integ::None, 0),
        "aes192gcm16" => (Cipher::AesGcm16, 24, Integ::None, 0),
        "aes256gcm16" => (Cipher::AesGcm16, 32, Integ::None, 0),
        "aes128-sha1" => (Cipher::AesCbc, 16, Integ::HmacSha1_96, 20),
        "aes192-sha256" => (Cipher::AesCbc, 24, Integ::HmacSha256_128, 32),
        "aes256-sha256" => (Cipher::AesCbc, 32, Integ::HmacSha256_128, 32),
        "aes256-sha384" => (Cipher::AesCbc, 32, Integ::HmacSha384_192, 48),
        "aes256-sha512" => (Cipher::AesCbc, 32, Integ::HmacSha512_256, 64),
        "null-sha256" => (Cipher::Null, 0, Integ::HmacSha256_128, 32),
        other => panic!("unknown algorithm {other}"),
    };
    let (ck, ak, spi, src, dst) = match dir {
        Direction::Out => (s("ckey_out"), s("akey_out"), c["spi_out"].as_u64().unwrap(), s("gw"), s("peer")),
        Direction::In => (s("ckey_in"), s("akey_in"), c["spi_in"].as_u64().unwrap(), s("peer"), s("gw")),
    };
    let hex = |h: &str| {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
    };
    let (ck, ak) = (hex(&ck), hex(&ak));
    let mut cfg: SaConfig = bytemuck::Zeroable::zeroed();
    cfg.spi = spi as u32;
    cfg.reqid = c["reqid"].as_u64().unwrap() as u32;
    cfg.direction = dir as u8;
    cfg.mode = SaMode::Tunnel as u8;
    cfg.family = c["family"].as_u64().unwrap() as u8;
    cfg.cipher = cipher as u8;
    cfg.cipher_key_len = klen as u8;
    cfg.cipher_key[..klen].copy_from_slice(&ck[..klen]);
    if cipher == Cipher::AesGcm16 {
        cfg.salt.copy_from_slice(&ck[klen..klen + 4]);
    }
    cfg.integ = integ as u8;
    cfg.integ_key_len = ilen as u8;
    cfg.integ_key[..ilen].copy_from_slice(&ak[..ilen]);
    cfg.replay_window = 64;
    cfg.src = addr16(src.parse().unwrap());
    cfg.dst = addr16(dst.parse().unwrap());
    cfg.dscp = 0xff;
    if c["udp"].as_bool().unwrap() {
        cfg.flags |= SA_FLAG_UDP_ENCAP;
        (cfg.encap_sport, cfg.encap_dport) = (4500, 4500);
    }
    if dir == Direction::In {
        cfg.ts_local = selector(&s("a_net"));
        cfg.ts_remote = selector(&s("b_net"));
    }
    cfg
}

fn python(dir: &Path, what: &str) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy/gw_matrix.py"))
        .arg(what)
        .arg(dir)
        .output()
        .expect("python3 with scapy (scripts/setup.sh installs them)")
}

#[test]
fn every_algorithm_both_families_with_and_without_udp_encapsulation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = python(d, "make");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 36);

    let db = d.join("sadb");
    let region =
        Region::create(&db, &Capacities { sas: 256, policies: 64, readers: 8, ..Capacities::default() })
            .unwrap();
    let mut neighbors = String::new();
    {
        let mut w = region.writer().unwrap();
        let mut policies = Vec::new();
        for c in &cases {
            w.add_sa(&sa_of(c, Direction::Out)).unwrap();
            w.add_sa(&sa_of(c, Direction::In)).unwrap();
            let (a, b) = (selector(c["a_net"].as_str().unwrap()), selector(c["b_net"].as_str().unwrap()));
            let plen = |net: &str| net.split_once('/').unwrap().1.parse::<u8>().unwrap();
            policies.push(PolicyConfig {
                id: c["id"].as_u64().unwrap() as u32 + 1,
                priority: 10,
                reqid: c["reqid"].as_u64().unwrap() as u32,
                direction: Direction::Out as u8,
                action: Action::Protect as u8,
                family: a.family,
                proto: 0,
                src: a.addr_start,
                dst: b.addr_start,
                src_plen: plen(c["a_net"].as_str().unwrap()),
                dst_plen: plen(c["b_net"].as_str().unwrap()),
                _pad: [0; 2],
                sport: [0, 65535],
                dport: [0, 65535],
                _pad2: 0,
            });
            neighbors += &format!(
                "[[neighbors]]\nip = \"{}\"\nmac = \"02:00:00:00:0a:10\"\nport = \"inside\"\n",
                c["a_host"].as_str().unwrap()
            );
            if c["family"] == 4 {
                neighbors += &format!(
                    "[[routes]]\nprefix = \"{}\"\nport = \"inside\"\n",
                    c["a_net"].as_str().unwrap()
                );
            }
        }
        w.add_policies(&policies).unwrap();
    }
    drop(region);
    let cfg = format!(
        r#"
eal = ["-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry", "--log-level", "error",
       "--file-prefix", "espd-gw-matrix-{pid}",
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
addresses = ["198.18.0.1/24", "2001:db8::1/64"]
[[ports]]
name = "inside"
device = "net_pcap1"
role = "inside"
addresses = ["198.18.1.1/24", "2001:db8:a::1/48"]
[[neighbors]]
ip = "198.18.0.2"
mac = "02:00:00:00:00:02"
port = "outside"
[[neighbors]]
ip = "2001:db8::2"
mac = "02:00:00:00:00:02"
port = "outside"
{neighbors}"#,
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
    let checked = python(d, "check");
    let text = String::from_utf8_lossy(&checked.stdout);
    println!("{text}");
    assert!(
        checked.status.success(),
        "scapy check failed:\n{text}{}\nespd: {report}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(
        (c["encap-packets"].as_u64(), c["decap-packets"].as_u64()),
        (Some(108), Some(108)),
        "{report}"
    );
    // Each SA counted its own three packets.
    let region = Region::attach(&db).unwrap();
    for e in region.list_sas() {
        assert_eq!(e.stats.packets, 3, "SPI {:#x}: {:?}", e.config.spi, e.stats);
    }
    drop(region);

    // The first run's sequence numbers on the wire: 1, 2, 3 for every SA.
    let seqs_on_wire = || {
        let frames =
            espd::pcap::read_all(&mut std::fs::File::open(d.join("outside_out.pcap")).unwrap()).unwrap();
        let mut seqs: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
        for f in &frames {
            let be = |o: usize| u32::from_be_bytes(f[o..o + 4].try_into().unwrap());
            let l3 = 14;
            let (ip_len, proto) =
                if f[l3] >> 4 == 4 { (usize::from(f[l3] & 15) * 4, f[l3 + 9]) } else { (40, f[l3 + 6]) };
            let esp = l3 + ip_len + if proto == 17 { 8 } else { 0 };
            seqs.entry(be(esp)).or_default().push(be(esp + 4));
        }
        seqs
    };
    let first = seqs_on_wire();
    assert_eq!(first.len(), 36, "every outbound SA sent");
    for (spi, s) in &first {
        assert_eq!(s, &vec![1, 2, 3], "SPI {spi:#x}: sequence numbers of the first run");
    }

    // A restarted espd re-attaches to the same SA database and carries on: outbound
    // sequence numbers continue (4, 5, 6 on the wire: none reused), and the peer's packets
    // from before the restart are replays now.
    let again = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(&cfg_path)
        .args(["--idle-exit-ms", "800", "--json"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&again.stdout).lines().last().unwrap_or("")).unwrap();
    let c = &report["counters"];
    assert_eq!(
        (c["encap-packets"].as_u64(), c["decap-packets"].as_u64(), c["drop-replay"].as_u64()),
        (Some(108), None, Some(108)),
        "{report}"
    );
    let seqs = seqs_on_wire();
    assert_eq!(seqs.len(), 36, "every outbound SA sent");
    for (spi, s) in &seqs {
        assert_eq!(s, &vec![4, 5, 6], "SPI {spi:#x}: sequence numbers after the restart");
    }
}
