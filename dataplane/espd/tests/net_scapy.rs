//! The slow-path modules against an independent implementation: scapy (2.5) builds the
//! frames a neighbour would send, our code answers or classifies them, and scapy dissects
//! our output, recomputes every checksum (IPv4 header, ICMP, ICMPv6 with its pseudo-header)
//! and checks the fields.
//!
//! The test fails if python3 or scapy is missing. Set `ESPD_SKIP_SCAPY=1` to skip it
//! explicitly (refused under `CI=true`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use espd::net::addr::{IfAddr, Interface};
use espd::net::classify::{classify, Classified, Family, Fragment, Ignored};
use espd::net::ethernet::{self, Mac};
use espd::net::{arp, icmp, nd};

const OUR: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const INSIDE: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);

/// `gen` prints a JSON object of named frames (hex); `check` reads
/// `{name: [input hex, output hex]}` and verifies each output, exiting 1 on any failure.
const SCRIPT: &str = r#"
import sys, json, warnings
warnings.filterwarnings("ignore")
from scapy.all import *

OUR = "02:00:00:00:00:01"
INSIDE = "02:00:00:00:00:02"
PEER = "52:54:00:12:34:56"

def esp(spi):
    return Raw(struct.pack("!II", spi, 1) + b"\xaa" * 32)

def gen():
    f = {}
    f["arp_request"] = Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER)/ARP(op=1, hwsrc=PEER, psrc="198.18.0.2", pdst="198.18.0.1")
    f["arp_probe"] = Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER)/ARP(op=1, hwsrc=PEER, psrc="0.0.0.0", pdst="198.18.0.1")
    f["ns"] = (Ether(dst="33:33:ff:00:00:01", src=PEER)/IPv6(src="2001:db8::2", dst="ff02::1:ff00:1", hlim=255)
               /ICMPv6ND_NS(tgt="2001:db8::1")/ICMPv6NDOptSrcLLAddr(lladdr=PEER))
    f["ns_dad"] = (Ether(dst="33:33:ff:00:00:01", src=PEER)/IPv6(src="::", dst="ff02::1:ff00:1", hlim=255)
                   /ICMPv6ND_NS(tgt="2001:db8::1"))
    f["ns_unicast"] = (Ether(dst=OUR, src=PEER)/IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=255)
                       /ICMPv6ND_NS(tgt="2001:db8::1"))
    f["na"] = (Ether(dst=OUR, src=PEER)/IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=255)
               /ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr=PEER))
    f["echo4"] = (Ether(dst=OUR, src=PEER)/IP(src="198.18.0.2", dst="198.18.0.1", flags="DF", ttl=3,
                  options=[IPOption_RR(routers=["0.0.0.0"] * 3)])/ICMP(type=8, id=0x1234, seq=7)/Raw(b"ping" * 25))
    f["echo4_odd"] = Ether(dst=OUR, src=PEER)/IP(src="198.18.0.2", dst="198.18.0.1")/ICMP(type=8, id=1, seq=2)/Raw(b"abc")
    f["echo6"] = (Ether(dst=OUR, src=PEER)/IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=9)
                  /ICMPv6EchoRequest(id=0x4321, seq=9, data=b"y" * 57))
    f["big4"] = Ether(dst=INSIDE, src=PEER)/IP(src="10.0.3.4", dst="192.0.2.80", flags="DF")/UDP(sport=1234, dport=5678)/Raw(b"z" * 1400)
    f["big6"] = Ether(dst=INSIDE, src=PEER)/IPv6(src="2001:db8:10::5", dst="2001:db8:99::1")/UDP(sport=1, dport=2)/Raw(b"z" * 1400)
    # Frames for the classifier.
    to_us = lambda: Ether(dst=OUR, src=PEER)/IP(src="203.0.113.9", dst="198.18.0.1")
    f["c_esp"] = to_us()/IP(proto=50)[IP].payload if False else Ether(dst=OUR, src=PEER)/IP(src="203.0.113.9", dst="198.18.0.1", proto=50)/esp(0x01020304)
    f["c_natt_esp"] = to_us()/UDP(sport=4500, dport=4500)/esp(0xc0ffee)
    f["c_natt_ike"] = to_us()/UDP(sport=4500, dport=4500)/Raw(b"\0\0\0\0")/ISAKMP(init_cookie=b"A" * 8, exch_type=2)
    f["c_ike"] = to_us()/UDP(sport=500, dport=500)/ISAKMP(init_cookie=b"B" * 8, exch_type=2)
    f["c_keepalive"] = to_us()/UDP(sport=4500, dport=4500)/Raw(b"\xff")
    f["c_esp_frag"] = Ether(dst=OUR, src=PEER)/fragment(IP(src="203.0.113.9", dst="198.18.0.1", proto=50)/esp(7)/Raw(b"q" * 2000), 1400)[0]
    f["c_tcp_ssh"] = to_us()/TCP(sport=50000, dport=22)
    f["c_v6_ext_natt"] = (Ether(dst=OUR, src=PEER)/IPv6(src="2001:db8::2", dst="2001:db8::1")/IPv6ExtHdrHopByHop()
                          /IPv6ExtHdrDestOpt()/UDP(sport=4500, dport=4500)/esp(0x99))
    frags = fragment6(IPv6(src="2001:db8:10::5", dst="2001:db8:99::1")/IPv6ExtHdrFragment()/UDP(sport=7, dport=9)/Raw(b"a" * 3000), 1280)
    f["c_v6_frag_first"] = Ether(dst=INSIDE, src=PEER)/frags[0]
    f["c_v6_frag_later"] = Ether(dst=INSIDE, src=PEER)/frags[1]
    f["c_transit_tcp"] = Ether(dst=INSIDE, src=PEER)/IP(src="10.0.3.4", dst="192.0.2.80")/TCP(sport=40000, dport=443)
    f["c_transit_bad_csum"] = Ether(dst=INSIDE, src=PEER)/IP(src="10.0.3.4", dst="192.0.2.80", chksum=0x1234)/TCP()
    f["c_vlan"] = Ether(dst=OUR, src=PEER)/Dot1Q(vlan=5)/IP(src="203.0.113.9", dst="198.18.0.1", proto=50)/esp(1)
    print(json.dumps({k: raw(v).hex() for k, v in f.items()}))

def recomputed(pkt, layer, field):
    p2 = pkt.copy()
    delattr(p2[layer], field)
    return getattr(Ether(raw(p2))[layer], field)

def check_ip(p):
    assert p[IP].chksum == recomputed(p, IP, "chksum"), "IPv4 header checksum"

def check(name, inp, out):
    i, o = Ether(inp), Ether(out)
    if name == "arp_reply":
        a = o[ARP]
        assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, OUR, "198.18.0.1", PEER, "198.18.0.2"), a.summary()
        assert (o.dst, o.src) == (PEER, OUR)
    elif name == "arp_probe_reply":
        a = o[ARP]
        assert (a.op, a.psrc, a.pdst, a.hwdst) == (2, "198.18.0.1", "0.0.0.0", PEER)
    elif name in ("arp_request", "garp"):
        a = o[ARP]
        assert len(out) == 60 and o.dst == "ff:ff:ff:ff:ff:ff" and a.op == 1 and a.hwsrc == OUR
        assert a.hwdst == "00:00:00:00:00:00" and a.psrc == "198.18.0.1"
        assert a.pdst == ("198.18.0.254" if name == "arp_request" else "198.18.0.1")
    elif name.startswith("na_"):
        na = o[ICMPv6ND_NA]
        assert na.cksum == recomputed(o, ICMPv6ND_NA, "cksum"), "ICMPv6 checksum"
        assert o[IPv6].hlim == 255 and o[IPv6].src == "2001:db8::1" and na.tgt == "2001:db8::1"
        assert na.R == 1 and na.O == 1 and o[ICMPv6NDOptDstLLAddr].lladdr == OUR and o.src == OUR
        if name == "na_dad":
            assert na.S == 0 and o[IPv6].dst == "ff02::1" and o.dst == "33:33:00:00:00:01"
        else:
            assert na.S == 1 and o[IPv6].dst == "2001:db8::2" and o.dst == PEER
    elif name == "ns":
        ns = o[ICMPv6ND_NS]
        assert ns.cksum == recomputed(o, ICMPv6ND_NS, "cksum"), "ICMPv6 checksum"
        assert ns.tgt == "2001:db8::abcd:1234" and o[IPv6].dst == "ff02::1:ffcd:1234" and o[IPv6].hlim == 255
        assert o.dst == "33:33:ff:cd:12:34" and o[ICMPv6NDOptSrcLLAddr].lladdr == OUR
    elif name == "unsolicited_na":
        na = o[ICMPv6ND_NA]
        assert na.cksum == recomputed(o, ICMPv6ND_NA, "cksum") and na.S == 0 and na.O == 1
    elif name.startswith("echo4"):
        check_ip(o)
        assert o[IP].ihl == 5 and o[IP].ttl == 64 and o[IP].src == i[IP].dst and o[IP].dst == i[IP].src
        assert o[IP].len == len(out) - 14
        assert o[ICMP].type == 0 and o[ICMP].chksum == recomputed(o, ICMP, "chksum"), "ICMP checksum"
        assert (o[ICMP].id, o[ICMP].seq) == (i[ICMP].id, i[ICMP].seq)
        assert raw(o[ICMP].payload) == raw(i[ICMP].payload)
        assert (o.dst, o.src) == (PEER, OUR)
    elif name == "echo6":
        e = o[ICMPv6EchoReply]
        assert e.cksum == recomputed(o, ICMPv6EchoReply, "cksum"), "ICMPv6 checksum"
        assert (e.id, e.seq, e.data) == (0x4321, 9, b"y" * 57) and o[IPv6].hlim == 64
        assert o[IPv6].src == "2001:db8::1" and o[IPv6].dst == "2001:db8::2"
    elif name == "frag_needed":
        check_ip(o)
        u = o[ICMP]
        assert (u.type, u.code, u.nexthopmtu) == (3, 4, 1400) and u.chksum == recomputed(o, ICMP, "chksum")
        assert o[IP].src == "10.0.0.1" and o[IP].dst == "10.0.3.4" and o[IP].len == 576
        assert o[IPerror].src == "10.0.3.4" and o[IPerror].dst == "192.0.2.80" and o[UDPerror].dport == 5678
    elif name == "ptb":
        t = o[ICMPv6PacketTooBig]
        assert t.mtu == 1400 and t.cksum == recomputed(o, ICMPv6PacketTooBig, "cksum"), "ICMPv6 checksum"
        assert o[IPv6].plen + 40 == 1280 and o[IPv6].dst == "2001:db8:10::5"
        assert o[IPerror6].dst == "2001:db8:99::1"
    else:
        raise AssertionError("unknown output " + name)

def main():
    if sys.argv[1] == "gen":
        return gen()
    bad = 0
    for name, (inp, out) in json.load(sys.stdin).items():
        try:
            check(name, bytes.fromhex(inp), bytes.fromhex(out))
            print("ok", name)
        except Exception as e:
            bad += 1
            print("FAIL", name, repr(e))
    sys.exit(1 if bad else 0)

main()
"#;

fn python(mode: &str, stdin: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python3 {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn ifaces() -> Vec<Interface> {
    let a = |s: &str| s.parse::<IfAddr>().unwrap();
    vec![
        Interface::new(0, OUR, vec![a("198.18.0.1/24"), a("2001:db8::1/64")]),
        Interface::new(1, INSIDE, vec![a("10.0.0.1/16"), a("2001:db8:10::1/64")]),
    ]
}

#[test]
fn scapy_cross_implementation() {
    if std::env::var_os("ESPD_SKIP_SCAPY").is_some() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "ESPD_SKIP_SCAPY is refused under CI=true");
        eprintln!("SKIP: ESPD_SKIP_SCAPY is set");
        return;
    }
    let probe = Command::new("python3").args(["-c", "import scapy.all"]).output();
    assert!(
        probe.map(|o| o.status.success()).unwrap_or(false),
        "python3 with scapy is required (pip install scapy==2.5.0), or set ESPD_SKIP_SCAPY=1"
    );
    let gen: BTreeMap<String, String> = serde_json::from_str(&python("gen", "")).unwrap();
    let frame = |name: &str| unhex(&gen[name]);
    let ifs = ifaces();
    let outside = &ifs[0];
    let mut outputs: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut put = |name: &str, input: &[u8], output: &[u8]| {
        outputs.insert(name.to_string(), (hex(input), hex(output)));
    };

    // ARP.
    for (input, name) in [("arp_request", "arp_reply"), ("arp_probe", "arp_probe_reply")] {
        let inp = frame(input);
        assert_eq!(classify(&inp, 0, &ifs), Classified::Arp);
        let mut f = inp.clone();
        assert!(arp::reply_in_place(&mut f, outside), "{name}");
        put(name, &inp, &f);
    }
    let mut buf = [0u8; 128];
    let n = arp::build_request(&mut buf, OUR, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 254))
        .unwrap();
    put("arp_request", &[], &buf[..n]);
    let n = arp::build_gratuitous(&mut buf, OUR, Ipv4Addr::new(198, 18, 0, 1)).unwrap();
    put("garp", &[], &buf[..n]);

    // Neighbour discovery.
    for (input, name) in [("ns", "na_solicited"), ("ns_dad", "na_dad"), ("ns_unicast", "na_unicast")] {
        let inp = frame(input);
        assert_eq!(classify(&inp, 0, &ifs), Classified::NeighborSolicit, "{input}");
        let ns = nd::parse_ns(&inp).unwrap();
        assert_eq!(ns.target, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        let mut b = inp.clone();
        b.resize(256, 0);
        let n = nd::na_in_place(&mut b, inp.len(), outside).unwrap();
        put(name, &inp, &b[..n]);
    }
    let na = frame("na");
    assert_eq!(classify(&na, 0, &ifs), Classified::NeighborAdvert);
    let parsed = nd::parse_na(&na).unwrap();
    assert_eq!(
        parsed.learnable(),
        Some(("2001:db8::2".parse().unwrap(), Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])))
    );
    assert!(parsed.solicited && parsed.override_entry && !parsed.router);
    let n =
        nd::build_ns(&mut buf, OUR, "2001:db8::1".parse().unwrap(), "2001:db8::abcd:1234".parse().unwrap())
            .unwrap();
    put("ns", &[], &buf[..n]);
    let n = nd::build_unsolicited_na(&mut buf, OUR, "2001:db8::1".parse().unwrap()).unwrap();
    put("unsolicited_na", &[], &buf[..n]);

    // Echo.
    for name in ["echo4", "echo4_odd"] {
        let inp = frame(name);
        assert_eq!(classify(&inp, 0, &ifs), Classified::IcmpEchoToUs { family: Family::V4, l3_offset: 14 });
        let mut f = inp.clone();
        let n = icmp::echo_reply_v4_in_place(&mut f, OUR).unwrap();
        put(name, &inp, &f[..n]);
    }
    let inp = frame("echo6");
    assert_eq!(classify(&inp, 0, &ifs), Classified::IcmpEchoToUs { family: Family::V6, l3_offset: 14 });
    let mut f = inp.clone();
    let n = icmp::echo_reply_v6_in_place(&mut f, OUR).unwrap();
    put("echo6", &inp, &f[..n]);

    // ICMP errors: the L3 packet after an Ethernet header the caller writes.
    let big4 = frame("big4");
    let mut out = vec![0u8; 2048];
    let n = icmp::build_fragmentation_needed(&mut out[14..], &big4[14..], Ipv4Addr::new(10, 0, 0, 1), 1400)
        .unwrap();
    ethernet::write_header(
        &mut out,
        Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        INSIDE,
        ethernet::ETHERTYPE_IPV4,
    );
    put("frag_needed", &big4, &out[..14 + n]);
    let big6 = frame("big6");
    let n = icmp::build_packet_too_big(&mut out[14..], &big6[14..], "2001:db8:10::1".parse().unwrap(), 1400)
        .unwrap();
    ethernet::write_header(
        &mut out,
        Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        INSIDE,
        ethernet::ETHERTYPE_IPV6,
    );
    put("ptb", &big6, &out[..14 + n]);

    // Classifier on scapy's frames.
    let v4 = Family::V4;
    let cases: Vec<(&str, u16, Classified)> = vec![
        (
            "c_esp",
            0,
            Classified::EspToUs {
                family: v4,
                spi: 0x0102_0304,
                udp_encap: false,
                l3_offset: 14,
                esp_offset: 34,
            },
        ),
        (
            "c_natt_esp",
            0,
            Classified::EspToUs { family: v4, spi: 0xc0ffee, udp_encap: true, l3_offset: 14, esp_offset: 42 },
        ),
        (
            "c_natt_ike",
            0,
            Classified::IkeToUs { family: v4, l3_offset: 14, ike_offset: 46, non_esp_marker: true },
        ),
        (
            "c_ike",
            0,
            Classified::IkeToUs { family: v4, l3_offset: 14, ike_offset: 42, non_esp_marker: false },
        ),
        ("c_keepalive", 0, Classified::NatKeepalive { family: v4, l3_offset: 14 }),
        ("c_esp_frag", 0, Classified::OtherToUs { family: v4, l3_offset: 14 }),
        ("c_tcp_ssh", 0, Classified::OtherToUs { family: v4, l3_offset: 14 }),
        (
            "c_v6_ext_natt",
            0,
            Classified::EspToUs {
                family: Family::V6,
                spi: 0x99,
                udp_encap: true,
                l3_offset: 14,
                esp_offset: 14 + 40 + 16 + 8,
            },
        ),
        (
            "c_transit_tcp",
            1,
            Classified::Transit {
                family: v4,
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 3, 4)),
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80)),
                proto: 6,
                sport: 40000,
                dport: 443,
                l3_offset: 14,
                l4_offset: 34,
                fragment: Fragment::No,
            },
        ),
        ("c_transit_bad_csum", 1, Classified::Malformed(espd::net::classify::Malformed::BadIpv4Checksum)),
        ("c_vlan", 0, Classified::Ignore(Ignored::VlanTagged)),
    ];
    for (name, port, want) in cases {
        assert_eq!(classify(&frame(name), port, &ifs), want, "{name}");
    }
    assert!(matches!(
        classify(&frame("c_v6_frag_first"), 1, &ifs),
        Classified::Transit { proto: 17, sport: 7, dport: 9, fragment: Fragment::First, l4_offset: 62, .. }
    ));
    assert!(matches!(
        classify(&frame("c_v6_frag_later"), 1, &ifs),
        Classified::Transit { proto: 17, sport: 0, dport: 0, fragment: Fragment::NonFirst, .. }
    ));

    let report = python("check", &serde_json::to_string(&outputs).unwrap());
    let oks = report.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, outputs.len(), "{report}");
}
