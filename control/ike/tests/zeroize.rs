//! The IKE engine leaves no key material in the heap memory it frees.
//!
//! This binary's global allocator (`ffi/wipe/src/scan.rs`) searches every
//! block freed while a test is armed for needles. The needles are not known before the keys
//! are derived, so each case runs the same deterministic handshake twice (Main or Aggressive
//! Mode, then Quick Mode with PFS, between two engines over an in-memory network):
//!
//! 1. unarmed, with the engines' random draws recorded, to learn the secrets. The test
//!    recomputes them from the draws and the public API (`ike::keys`, `DhSecret`) and only
//!    accepts them when they reproduce what the engines produced: the phase-1 encryption key
//!    of [`Engine::keylog_ike_sa`] and the ESP keys of [`Event::InstallSa`]. That proves which
//!    draws were the DH private values and nonces.
//! 2. armed from before the engines are created until after both engines, every event and
//!    every description the test holds are dropped, and checked to reproduce run 1 (same SPIs,
//!    keys and phase-1 key).
//!
//! The needles: the pre-shared key; SKEYID, SKEYID_d, SKEYID_a, SKEYID_e and the phase-1
//! encryption key (RFC 2409 §5 and Appendix B); the phase-1 and the Quick Mode (PFS) shared
//! secret g^xy and the four DH private values (as drawn, and byte-reversed for the ECP groups,
//! whose scalars are kept as little-endian limbs); the ESP encryption key, salt (GCM) and
//! integrity key (CBC) of both SAs (each engine's outbound SA is the other's inbound one, byte
//! for byte). Needles longer than [`MAX_LEN`] are searched for by their first and their last bytes.
//!
//! The cases (see [`CASES`]): Main Mode with curve25519 (ESP AES-GCM-128; AES-CBC-256 +
//! HMAC-SHA-256 with a second child SA and a Delete before the drop), Aggressive Mode with
//! curve25519 (AES-GCM-256), Main Mode with ecp256 (AES-CBC-128 + HMAC-SHA-256, two child SAs,
//! deleted) and Aggressive Mode with modp2048 (AES-CBC-128 + HMAC-SHA-1), each with PFS in the
//! same group. The others run through the same code.
//!
//! What it found, and fixed in `crypto/dh.rs`: MODP g^xy in the full-width buffer of
//! `uint_to` (`Vec::split_off` copies even at 0 and frees the old block unwiped; 256-byte
//! blocks, one per engine and exchange); and, in optimised builds, the initiator's ECP and
//! X25519 private values, which `DhSecret` held inline: a state moved out of its heap slot
//! (`mem::replace`) left a bitwise copy behind, freed unwiped with the `Vec` of IKE SAs or of
//! Quick Modes (1760- and 2176-byte blocks). `DhSecret` now keeps the private value in a
//! wiped block of its own.
//!
//! Out of reach, by design: stack copies (the allocator sees only the heap); the text of the
//! optional key log (`iked --keylog` writes the phase-1 key in hex on purpose, in `iked`; only
//! the `Secret` that [`Engine::keylog_ike_sa`] returns is covered here, and it is wiped); the
//! HMAC chaining states of the SKEYIDs (computed on the stack only). Not a needle: the
//! engine's responder-cookie secret (not key material; it lives inline in `Engine`). The
//! test's own random source keeps no output buffer, so what the scanner finds is the engine's.
//!
//! `the_scanner_sees_a_key_left_in_a_freed_block` is the control: an unwiped `Vec` is seen.

use wipe::scan as scan_alloc;

use ike::crypto::{Cipher, DhGroup, DhSecret, HashAlgorithm};
use ike::engine::*;
use ike::keys::{derive_phase1, skeyid_psk, Phase1Keys};
use rand_core::{CryptoRng, RngCore};
use scan_alloc::{arm, disarm, serial, ScanAlloc, MAX_LEN, MAX_NEEDLES};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

#[global_allocator]
static ALLOC: ScanAlloc = ScanAlloc;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// Long and unlike anything else in memory (a static, so the test holds no heap copy).
const PSK: &[u8] = b"zeroize test: pre-shared key 7f3c91a2d84e";
/// RFC 2407 §4.4.1: PROTO_IPSEC_ESP, the protocol byte of KEYMAT.
const PROTO_ESP: u8 = 3;

/// A needle and its name, on the stack (a heap copy would itself be a finding).
#[derive(Clone, Copy)]
struct Needle {
    name: &'static str,
    len: usize,
    bytes: [u8; MAX_LEN],
}

/// Every needle of a case and the SPIs of run 1, on the stack.
struct Needles {
    n: usize,
    list: [Needle; MAX_NEEDLES],
    /// A's (inbound, outbound) SPIs, per child SA.
    spis: [(u32, u32); 2],
}

impl Needles {
    fn new() -> Self {
        Needles {
            n: 0,
            list: [Needle { name: "", len: 0, bytes: [0; MAX_LEN] }; MAX_NEEDLES],
            spis: [(0, 0); 2],
        }
    }

    fn push(&mut self, name: &'static str, b: &[u8]) {
        assert!(self.n < MAX_NEEDLES, "too many needles");
        assert!(b.len() >= 4, "needle {name} too short");
        let len = b.len().min(MAX_LEN);
        let slot = &mut self.list[self.n];
        slot.name = name;
        slot.len = len;
        slot.bytes[..len].copy_from_slice(&b[..len]);
        self.n += 1;
    }

    /// Pushes `b` when it is not empty (a salt or an integrity key some transforms lack).
    fn push_some(&mut self, name: &'static str, b: &[u8]) {
        if !b.is_empty() {
            self.push(name, b);
        }
    }

    /// Pushes `b`; when it is longer than [`MAX_LEN`] (MODP g^xy), its last bytes as well.
    fn push_long(&mut self, names: [&'static str; 2], b: &[u8]) {
        self.push(names[0], b);
        if b.len() > MAX_LEN {
            self.push(names[1], &b[b.len() - MAX_LEN..]);
        }
    }

    fn get(&self, name: &str) -> &[u8] {
        let n = self.list[..self.n].iter().find(|n| n.name == name).expect(name);
        &n.bytes[..n.len]
    }

    fn get_or_empty(&self, name: &str) -> &[u8] {
        self.list[..self.n].iter().find(|n| n.name == name).map_or(&[], |n| &n.bytes[..n.len])
    }
}

/// Deterministic random source: SHA-256(seed | counter) blocks. It keeps no output buffer,
/// so nothing it drew is left in its (heap) box. Run 1 records every draw.
struct TestRng {
    seed: u64,
    counter: u64,
    log: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let mut h = Sha256::new();
            h.update(self.seed.to_le_bytes());
            h.update(self.counter.to_le_bytes());
            self.counter += 1;
            let out = h.finalize();
            chunk.copy_from_slice(&out[..chunk.len()]);
        }
        if let Some(log) = &self.log {
            log.lock().unwrap().push(dest.to_vec());
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

type Log = Arc<Mutex<Vec<Vec<u8>>>>;

/// Hands out SPIs from a base, never twice.
struct Spis {
    next: u32,
    used: HashSet<u32>,
}

impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.next += 1;
        assert!(self.used.insert(self.next), "SPI reused");
        Some(self.next)
    }
    fn release(&mut self, spi: u32) {
        self.used.remove(&spi);
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    mode: Phase1Mode,
    ike: IkeProposal,
    esp: EspProposal,
    pfs: DhGroup,
    /// A deletes the IKE SA (and its children) before the engines are dropped; otherwise
    /// they are dropped with everything established.
    delete_first: bool,
    /// A second Quick Mode (a second child SA pair) on the same IKE SA.
    second_child: bool,
}

fn subnet(a: IpAddr) -> TrafficSelector {
    let IpAddr::V4(v) = a else { unreachable!() };
    TrafficSelector {
        address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, v.octets()[3], 0, 0)), 16),
        protocol: 0,
        port: 0,
    }
}

fn peer(local: IpAddr, remote: IpAddr, c: &Case) -> PeerConfig {
    PeerConfig {
        name: format!("{remote}"),
        remote_address: remote,
        local_address: local,
        local_id: Identity::Fqdn(format!("gw-{local}")),
        remote_id: Identity::Fqdn(format!("gw-{remote}")),
        auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(PSK.to_vec())),
        mode: c.mode,
        accept_aggressive: true,
        ike_proposals: vec![c.ike],
        ike_lifetime: Duration::from_secs(86_400),
        child: ChildConfig {
            local_ts: subnet(local),
            remote_ts: subnet(remote),
            proposals: vec![c.esp],
            mode: ChildMode::Tunnel,
            pfs_group: Some(c.pfs),
            lifetime_seconds: 3600,
            lifetime_kilobytes: 4_000_000,
        },
        nat_traversal: true,
        force_encap: false,
        initial_contact: true,
        prefer_configured_proposals: false,
    }
}

fn engine(peers: Vec<PeerConfig>, seed: u64, spi_base: u32, log: Option<Log>) -> Engine {
    Engine::new(
        EngineConfig { peers, ..EngineConfig::default() },
        Box::new(TestRng { seed, counter: 0, log }),
        Box::new(Spis { next: spi_base, used: HashSet::new() }),
    )
}

/// Two engines over a lossless in-memory network with virtual time.
struct Pair {
    a: Engine,
    b: Engine,
    now: Instant,
    wire: Vec<(Instant, Transmit)>,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
}

impl Pair {
    fn collect(&mut self) {
        let latency = Duration::from_millis(10);
        while let Some(t) = self.a.poll_transmit().or_else(|| self.b.poll_transmit()) {
            self.wire.push((self.now + latency, t));
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
    }

    /// Runs until nothing is in flight and no timer is due within 60 s of virtual time.
    fn drive(&mut self) {
        let end = self.now + Duration::from_secs(60);
        loop {
            self.collect();
            let next_wire = self.wire.iter().map(|(t, _)| *t).min();
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            let Some(next) = [next_wire, next_timer].into_iter().flatten().min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (due, keep): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|(t, _)| *t <= now);
            self.wire = keep;
            for (_, t) in due {
                let dst = if t.destination.ip() == A { &mut self.a } else { &mut self.b };
                dst.handle_datagram(now, t.destination, t.source, &t.contents);
            }
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
        }
    }
}

fn installs(events: &[Event]) -> Vec<(&EspSaDescription, &EspSaDescription)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InstallSa { inbound, outbound, .. } => Some((&**inbound, &**outbound)),
            _ => None,
        })
        .collect()
}

fn established(events: &[Event]) -> IkeSaId {
    let v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaEstablished { ike_sa, .. } => Some(*ike_sa),
            _ => None,
        })
        .collect();
    assert_eq!(v.len(), 1, "one IKE SA");
    v[0]
}

/// A initiates phase 1 and Quick Mode; both sides establish and install one SA pair.
fn handshake(c: &Case, logs: Option<(Log, Log)>) -> Pair {
    let (la, lb) = logs.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let mut pair = Pair {
        a: engine(vec![peer(A, B, c)], 1, 0x1000, la),
        b: engine(vec![peer(B, A, c)], 2, 0x2000, lb),
        now: Instant::now(),
        wire: Vec::new(),
        a_events: Vec::new(),
        b_events: Vec::new(),
    };
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    for e in pair.a_events.iter().chain(&pair.b_events) {
        assert!(!matches!(e, Event::Failed { .. }), "{}: {e:?}", c.name);
    }
    established(&pair.a_events);
    established(&pair.b_events);
    if c.second_child {
        let id = established(&pair.a_events);
        let now = pair.now;
        pair.a.handle_command(now, Command::CreateChild(id));
        pair.drive();
    }
    let (ia, ib) = (installs(&pair.a_events), installs(&pair.b_events));
    assert_eq!(ia.len(), 1 + usize::from(c.second_child), "{}: child SA pairs", c.name);
    assert_eq!(ia.len(), ib.len(), "{}", c.name);
    for ((a_in, a_out), (b_in, b_out)) in ia.iter().zip(&ib) {
        assert!(a_out == b_in && a_in == b_out, "{}: the two ends disagree", c.name);
    }
    pair
}

/// The secrets of phase 1, recomputed from the recorded draws.
struct Phase1 {
    x: Zeroizing<Vec<u8>>,
    y: Zeroizing<Vec<u8>>,
    gxy: Zeroizing<Vec<u8>>,
    keys: Phase1Keys,
}

/// The draws of at least 16 bytes: DH private values, nonces, the cookie secret.
fn candidates(log: &Log) -> Vec<Vec<u8>> {
    log.lock().unwrap().iter().filter(|d| d.len() >= 16).cloned().collect()
}

/// A candidate DH exchange: A's and B's private values, their shared secret and public values.
struct DhPair<'a> {
    x: &'a [u8],
    y: &'a [u8],
    gxy: Zeroizing<Vec<u8>>,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
}

/// Every (A, B) pair of draws that are valid private values of `group`.
fn dh_pairs<'a>(group: DhGroup, ca: &'a [Vec<u8>], cb: &'a [Vec<u8>]) -> Vec<DhPair<'a>> {
    let sa: Vec<_> =
        ca.iter().filter_map(|x| Some((x, DhSecret::from_private_bytes(group, x).ok()?))).collect();
    let sb: Vec<_> =
        cb.iter().filter_map(|y| Some((y, DhSecret::from_private_bytes(group, y).ok()?))).collect();
    let mut out = Vec::new();
    for (x, dx) in &sa {
        for (y, dy) in &sb {
            if let Ok(gxy) = dx.agree(dy.public_value()) {
                let (gxi, gxr) = (dx.public_value().to_vec(), dy.public_value().to_vec());
                out.push(DhPair { x, y, gxy, gxi, gxr });
            }
        }
    }
    out
}

/// Finds the DH values and nonces that reproduce the engine's phase-1 key.
fn find_phase1(c: &Case, ca: &[Vec<u8>], cb: &[Vec<u8>], cookies: ([u8; 8], [u8; 8]), key: &[u8]) -> Phase1 {
    for DhPair { x, y, gxy, gxi, gxr } in dh_pairs(c.ike.group, ca, cb) {
        for ni in ca {
            for nr in cb {
                let skeyid = skeyid_psk(c.ike.hash, PSK, ni, nr);
                let keys =
                    derive_phase1(c.ike.hash, c.ike.cipher, skeyid, &gxy, &cookies.0, &cookies.1, &gxi, &gxr);
                if *keys.encryption_key == *key {
                    return Phase1 {
                        x: Zeroizing::new(x.to_vec()),
                        y: Zeroizing::new(y.to_vec()),
                        gxy,
                        keys,
                    };
                }
            }
        }
    }
    panic!("{}: the recorded draws do not reproduce the phase-1 key", c.name);
}

/// Finds the PFS DH values and nonces that reproduce the KEYMAT of A's inbound SA; checks the
/// outbound one with them. Returns (x, y, g^xy).
fn find_quick(
    c: &Case,
    p1: &Phase1,
    ca: &[Vec<u8>],
    cb: &[Vec<u8>],
    a_in: &EspSaDescription,
    a_out: &EspSaDescription,
) -> (Vec<u8>, Vec<u8>, Zeroizing<Vec<u8>>) {
    let keymat = |sa: &EspSaDescription| -> Vec<u8> {
        [&sa.encryption_key[..], &sa.salt[..], &sa.integrity_key[..]].concat()
    };
    let (want_in, want_out) = (keymat(a_in), keymat(a_out));
    for DhPair { x, y, gxy, .. } in dh_pairs(c.pfs, ca, cb) {
        for ni in ca {
            for nr in cb {
                let km =
                    p1.keys.keymat(Some(&gxy), PROTO_ESP, &a_in.spi.to_be_bytes(), ni, nr, want_in.len());
                if *km == want_in[..] {
                    let out = p1.keys.keymat(
                        Some(&gxy),
                        PROTO_ESP,
                        &a_out.spi.to_be_bytes(),
                        ni,
                        nr,
                        want_out.len(),
                    );
                    assert_eq!(*out, want_out[..], "{}: outbound KEYMAT", c.name);
                    return (x.to_vec(), y.to_vec(), gxy);
                }
            }
        }
    }
    panic!("{}: the recorded draws do not reproduce the Quick Mode KEYMAT", c.name);
}

fn is_ecp(g: DhGroup) -> bool {
    matches!(g, DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521)
}

fn push_private(n: &mut Needles, names: [&'static str; 2], group: DhGroup, x: &[u8]) {
    n.push(names[0], x);
    if is_ecp(group) {
        let mut r = [0u8; 66];
        r[..x.len()].copy_from_slice(x);
        r[..x.len()].reverse();
        n.push(names[1], &r[..x.len()]);
    }
}

/// Run 1: the secrets of the handshake, unarmed.
/// The names of one child SA's needles.
const QM: [[&str; 12]; 2] = [
    [
        "Quick Mode g^xy",
        "Quick Mode g^xy, last bytes",
        "Quick Mode DH private (A)",
        "Quick Mode DH private (A), reversed",
        "Quick Mode DH private (B)",
        "Quick Mode DH private (B), reversed",
        "ESP encryption key (A inbound)",
        "ESP salt (A inbound)",
        "ESP integrity key (A inbound)",
        "ESP encryption key (A outbound)",
        "ESP salt (A outbound)",
        "ESP integrity key (A outbound)",
    ],
    [
        "second Quick Mode g^xy",
        "second Quick Mode g^xy, last bytes",
        "second Quick Mode DH private (A)",
        "second Quick Mode DH private (A), reversed",
        "second Quick Mode DH private (B)",
        "second Quick Mode DH private (B), reversed",
        "second ESP encryption key (A inbound)",
        "second ESP salt (A inbound)",
        "second ESP integrity key (A inbound)",
        "second ESP encryption key (A outbound)",
        "second ESP salt (A outbound)",
        "second ESP integrity key (A outbound)",
    ],
];

fn learn(c: &Case) -> Needles {
    let (la, lb): (Log, Log) = Default::default();
    let pair = handshake(c, Some((la.clone(), lb.clone())));
    let id = established(&pair.a_events);
    let (_, p1key) = pair.a.keylog_ike_sa(id).expect("key log");
    let cookies = pair.a.ike_sa(id).expect("summary").cookies;
    let (ca, cb) = (candidates(&la), candidates(&lb));
    let p1 = find_phase1(c, &ca, &cb, cookies, &p1key);

    let mut n = Needles::new();
    n.push("pre-shared key", PSK);
    n.push("SKEYID", &p1.keys.skeyid);
    n.push("SKEYID_d", &p1.keys.skeyid_d);
    n.push("SKEYID_a", &p1.keys.skeyid_a);
    n.push("SKEYID_e", &p1.keys.skeyid_e);
    n.push("phase-1 encryption key", &p1.keys.encryption_key);
    n.push_long(["phase-1 g^xy", "phase-1 g^xy, last bytes"], &p1.gxy);
    push_private(&mut n, ["phase-1 DH private (A)", "phase-1 DH private (A), reversed"], c.ike.group, &p1.x);
    push_private(&mut n, ["phase-1 DH private (B)", "phase-1 DH private (B), reversed"], c.ike.group, &p1.y);
    for (k, (a_in, a_out)) in installs(&pair.a_events).into_iter().enumerate() {
        let (x2, y2, gxy2) = find_quick(c, &p1, &ca, &cb, a_in, a_out);
        let q = &QM[k];
        n.spis[k] = (a_in.spi, a_out.spi);
        n.push_long([q[0], q[1]], &gxy2);
        push_private(&mut n, [q[2], q[3]], c.pfs, &x2);
        push_private(&mut n, [q[4], q[5]], c.pfs, &y2);
        n.push(q[6], &a_in.encryption_key);
        n.push_some(q[7], &a_in.salt);
        n.push_some(q[8], &a_in.integrity_key);
        n.push(q[9], &a_out.encryption_key);
        n.push_some(q[10], &a_out.salt);
        n.push_some(q[11], &a_out.integrity_key);
    }
    n
}

/// Run 2: the same handshake armed, from before the engines exist until after they are
/// dropped; the needles seen in freed blocks.
fn leaks(c: &Case, n: &Needles) -> Vec<(&'static str, u32)> {
    let refs: Vec<&[u8]> = n.list[..n.n].iter().map(|n| &n.bytes[..n.len]).collect();
    arm(&refs);
    {
        let mut pair = handshake(c, None);
        // Run 2 is run 1 again: same SPIs and keys.
        let id = established(&pair.a_events);
        {
            for (k, (a_in, a_out)) in installs(&pair.a_events).into_iter().enumerate() {
                let q = &QM[k];
                assert_eq!((a_in.spi, a_out.spi), n.spis[k], "{}: SPIs differ from run 1", c.name);
                assert!(*a_in.encryption_key == *n.get(q[6]), "{}: {}", c.name, q[6]);
                assert!(*a_in.salt == *n.get_or_empty(q[7]), "{}: {}", c.name, q[7]);
                assert!(*a_in.integrity_key == *n.get_or_empty(q[8]), "{}: {}", c.name, q[8]);
                assert!(*a_out.encryption_key == *n.get(q[9]), "{}: {}", c.name, q[9]);
                assert!(*a_out.salt == *n.get_or_empty(q[10]), "{}: {}", c.name, q[10]);
                assert!(*a_out.integrity_key == *n.get_or_empty(q[11]), "{}: {}", c.name, q[11]);
            }
            let (_, p1key) = pair.a.keylog_ike_sa(id).expect("key log");
            assert!(*p1key == *n.get("phase-1 encryption key"), "{}: phase-1 key differs", c.name);
        }
        if c.delete_first {
            let now = pair.now;
            pair.a.handle_command(now, Command::Delete(id));
            pair.drive();
            assert_eq!(pair.a.ike_sa_count(), 0, "{}", c.name);
            assert_eq!(pair.b.ike_sa_count(), 0, "{}: B did not delete", c.name);
        }
        drop(pair);
    }
    let hits = disarm();
    n.list[..n.n].iter().zip(hits).filter(|(_, h)| *h > 0).map(|(n, h)| (n.name, h)).collect()
}

#[test]
fn the_scanner_sees_a_key_left_in_a_freed_block() {
    let _g = serial();
    let key = *b"an unwiped key 0123456789abcdef!";
    scan_alloc::assert_sees_an_unwiped_vec(&key);
}

const CASES: [Case; 5] = [
    Case {
        name: "Main Mode, curve25519 + PFS curve25519, ESP AES-GCM-128",
        mode: Phase1Mode::Main,
        ike: IkeProposal {
            cipher: Cipher::Aes128Cbc,
            hash: HashAlgorithm::Sha256,
            group: DhGroup::Curve25519,
        },
        esp: EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None, esn: false },
        pfs: DhGroup::Curve25519,
        delete_first: false,
        second_child: false,
    },
    Case {
        // SHA-1 with AES-256: SKEYID_e is stretched (RFC 2409 Appendix B).
        name:
            "Main Mode, curve25519 + PFS curve25519, ESP AES-CBC-256 + HMAC-SHA-256, two child SAs, deleted",
        mode: Phase1Mode::Main,
        ike: IkeProposal { cipher: Cipher::Aes256Cbc, hash: HashAlgorithm::Sha1, group: DhGroup::Curve25519 },
        esp: EspProposal {
            encryption: EspEncryption::AesCbc(256),
            integrity: Some(EspIntegrity::HmacSha256),
            esn: false,
        },
        pfs: DhGroup::Curve25519,
        delete_first: true,
        second_child: true,
    },
    Case {
        name: "Aggressive Mode, curve25519 + PFS curve25519, ESP AES-GCM-256",
        mode: Phase1Mode::Aggressive,
        ike: IkeProposal {
            cipher: Cipher::Aes256Cbc,
            hash: HashAlgorithm::Sha256,
            group: DhGroup::Curve25519,
        },
        esp: EspProposal { encryption: EspEncryption::AesGcm16(256), integrity: None, esn: false },
        pfs: DhGroup::Curve25519,
        delete_first: false,
        second_child: false,
    },
    Case {
        name: "Main Mode, ecp256 + PFS ecp256, ESP AES-CBC-128 + HMAC-SHA-256, two child SAs, deleted",
        mode: Phase1Mode::Main,
        ike: IkeProposal { cipher: Cipher::Aes128Cbc, hash: HashAlgorithm::Sha256, group: DhGroup::Ecp256 },
        esp: EspProposal {
            encryption: EspEncryption::AesCbc(128),
            integrity: Some(EspIntegrity::HmacSha256),
            esn: false,
        },
        pfs: DhGroup::Ecp256,
        delete_first: true,
        second_child: true,
    },
    Case {
        name: "Aggressive Mode, modp2048 + PFS modp2048, ESP AES-CBC-128 + HMAC-SHA-1",
        mode: Phase1Mode::Aggressive,
        ike: IkeProposal { cipher: Cipher::Aes128Cbc, hash: HashAlgorithm::Sha256, group: DhGroup::Modp2048 },
        esp: EspProposal {
            encryption: EspEncryption::AesCbc(128),
            integrity: Some(EspIntegrity::HmacSha1),
            esn: false,
        },
        pfs: DhGroup::Modp2048,
        delete_first: false,
        second_child: false,
    },
];

#[test]
fn the_engine_leaves_no_key_material_in_freed_memory() {
    let _g = serial();
    let mut failures = Vec::new();
    for c in &CASES {
        let needles = learn(c);
        let found = leaks(c, &needles);
        if !found.is_empty() {
            failures.push(format!("{}: {found:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "key material in freed memory:\n{}", failures.join("\n"));
}
