//! Two engines past phase 1, and the keys to talk to either of them under it: what the
//! `engine_quick_mode` target and its corpus generator share.
//!
//! [`Session::new`] runs a genuine Main Mode and Quick Mode between an initiator and a
//! responder (seeded RNGs, so every run is the same), then has the initiator start a
//! second Quick Mode (`CreateChild`) whose first message is held back: the responder waits
//! for Quick Mode messages from its peer, the initiator for the answer to its QM1.
//!
//! The phase-1 keys are not exported by the engine (only the encryption key, for key
//! logs), so the session derives them itself as a peer would: the initiator's RNG records
//! what it draws, the draw whose X25519 public value is the initiator's KE payload is its
//! private value, and from g^xy, the nonces and the cookies [`ike::keys::derive_phase1`]
//! gives SKEYID_a and the encryption key; the latter is checked against the engine's.
//!
//! An input is datagrams separated by `fe fe`, each sealed by [`Session::send`]:
//!
//! ```text
//! byte 0  control: bit 0   0: to the responder (as the initiator), 1: to the initiator
//!                  bits 1-2  HASH payload: 0 HASH(1) over the body (QM1, Informational),
//!                            1 HASH(2) with the Ni_b of the exchange (QM2), 2 HASH(3)
//!                            (QM3), 3 none (the body is the whole chain)
//!                  bit 3   0: Quick Mode, 1: Informational
//!                  bit 4   message id: 0 the current exchange's (the held-back QM1's when
//!                          sending to the initiator, the last one sent otherwise), 1 bytes 2..6
//!                  bit 5   plaintext: the E flag is clear and the body is not encrypted
//! byte 1  the type of the first payload after HASH
//! 2..6    message id (big-endian), used when bit 4 is set or there is no current exchange
//! rest    the payload chain after HASH
//! ```
//!
//! Messages are padded with zeros to the cipher block and encrypted with the IV of their
//! exchange (RFC 2409 Appendix B: hash(last phase-1 block | M-ID) for a new one, then the
//! last ciphertext block of the exchange's previous message), so the engine decrypts them,
//! checks the hash and acts on the payloads: the fuzzer reaches Quick Mode's and the
//! Informational exchange's handling, not just their decryption.

use crate::{peer_config, port500, INITIATOR, PSK, RESPONDER};
use ike::crypto::{DhGroup, DhSecret};
use ike::engine::*;
use ike::keys::{derive_phase1, skeyid_psk, Phase1Keys};
use ike::msgs::payload::parse_chain;
use ike::msgs::{ExchangeType, Header, Message, Payload, PayloadType, DEFAULT_MAX_MESSAGE_LEN, HEADER_LEN};
use rand_chacha::rand_core::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// ISAKMP header flag: the body is encrypted.
const FLAG_ENCRYPTION: u8 = 1;

/// A seeded RNG that keeps a copy of every 32-byte draw (the X25519 private value is one).
struct RecordingRng {
    inner: ChaCha20Rng,
    draws: Arc<Mutex<Vec<[u8; 32]>>>,
}

impl RngCore for RecordingRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest);
        if let Ok(d) = <[u8; 32]>::try_from(&*dest) {
            self.draws.lock().unwrap().push(d);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for RecordingRng {}

struct Spis(u32);
impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

/// Where an exchange (one message id) stands, per engine.
#[derive(Debug, Clone, Default)]
struct Exchange {
    /// IV of its next message (the last ciphertext block so far).
    iv: Vec<u8>,
    ni_b: Vec<u8>,
    nr_b: Vec<u8>,
}

/// Which engine a datagram goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The responder of phase 1 (the fuzzer plays the initiator).
    Responder,
    /// The initiator of phase 1 (the fuzzer plays the responder).
    Initiator,
}

/// Two engines with an established IKE SA, and its keys.
pub struct Session {
    /// Virtual time.
    pub now: Instant,
    /// The phase-1 initiator (at [`INITIATOR`]).
    pub initiator: Engine,
    /// The phase-1 responder (at [`RESPONDER`]).
    pub responder: Engine,
    /// Both cookies.
    pub cookies: ([u8; 8], [u8; 8]),
    /// The phase-1 keys, derived here.
    pub keys: Phase1Keys,
    /// The last ciphertext block of phase 1 (MM6).
    pub last_block: Vec<u8>,
    /// The initiator's held-back QM1 (of its `CreateChild`), as sent.
    pub held_qm1: Vec<u8>,
    /// Its message id.
    pub held_mid: u32,
    exchanges: HashMap<(Side, u32), Exchange>,
    /// The message id of the last exchange the fuzzer started towards the responder.
    last_mid: Option<u32>,
    /// Events seen, per side.
    pub events: Vec<(Side, Event)>,
}

fn engine(
    local: std::net::IpAddr,
    remote: std::net::IpAddr,
    seed: u64,
    draws: Arc<Mutex<Vec<[u8; 32]>>>,
) -> Engine {
    Engine::new(
        EngineConfig {
            peers: vec![peer_config(local, remote, PSK, Phase1Mode::Main)],
            ..EngineConfig::default()
        },
        Box::new(RecordingRng { inner: ChaCha20Rng::seed_from_u64(seed), draws }),
        Box::new(Spis(if seed == 1 { 0x1000 } else { 0x2000 })),
    )
}

/// The payloads of a plaintext message, or of a decrypted body.
fn payloads(first: PayloadType, body: &[u8]) -> Vec<(Payload, usize)> {
    parse_chain(first, body, true)
        .map(|v| v.into_iter().map(|p| (p.payload, p.raw.len())).collect())
        .unwrap_or_default()
}

fn nonce_of(p: &[(Payload, usize)]) -> Option<Vec<u8>> {
    p.iter().find_map(|(p, _)| if let Payload::Nonce(n) = p { Some(n.clone()) } else { None })
}

impl Session {
    /// Runs phase 1 and the first Quick Mode, derives the keys and holds back the
    /// initiator's second QM1. Panics if the engine's behaviour no longer matches what the
    /// derivation assumes (the target would then fuzz nothing useful).
    pub fn new() -> Session {
        let now = Instant::now();
        let draws = Arc::new(Mutex::new(Vec::new()));
        let mut a = engine(INITIATOR, RESPONDER, 1, draws.clone());
        let mut b = engine(RESPONDER, INITIATOR, 2, Arc::new(Mutex::new(Vec::new())));
        a.handle_command(now, Command::Initiate { peer: 0 });
        let mut log: Vec<(bool, Vec<u8>)> = Vec::new();
        for _ in 0..50 {
            if let Some(t) = a.poll_transmit() {
                b.handle_datagram(now, t.destination, t.source, &t.contents);
                log.push((true, t.contents));
            } else if let Some(t) = b.poll_transmit() {
                a.handle_datagram(now, t.destination, t.source, &t.contents);
                log.push((false, t.contents));
            } else {
                break;
            }
        }
        let mut events = Vec::new();
        while let Some(e) = a.poll_event() {
            events.push((Side::Initiator, e));
        }
        while let Some(e) = b.poll_event() {
            events.push((Side::Responder, e));
        }
        let sa = a.ike_sas().into_iter().find(|s| s.established).expect("phase 1 completes");
        assert!(b.ike_sas().iter().any(|s| s.established), "the responder is established");
        let cookies = sa.cookies;

        // KE and nonce of each side from MM3 and MM4 (plaintext).
        let (mut gxi, mut gxr, mut ni, mut nr) = (None, None, None, None);
        let mut last_block = Vec::new();
        for (from_a, d) in &log {
            let Ok(h) = Header::parse(d, DEFAULT_MAX_MESSAGE_LEN) else { continue };
            if h.exchange_type != ExchangeType::MAIN_MODE {
                continue;
            }
            if h.is_encrypted() {
                last_block = d[d.len() - 16..].to_vec();
                continue;
            }
            let m = Message::parse(d, DEFAULT_MAX_MESSAGE_LEN).expect("plaintext Main Mode parses");
            for p in m.payloads {
                match (p, from_a) {
                    (Payload::Ke(k), true) => gxi = Some(k),
                    (Payload::Ke(k), false) => gxr = Some(k),
                    (Payload::Nonce(n), true) => ni = Some(n),
                    (Payload::Nonce(n), false) => nr = Some(n),
                    _ => {}
                }
            }
        }
        let (gxi, gxr, ni, nr) = (gxi.unwrap(), gxr.unwrap(), ni.unwrap(), nr.unwrap());
        let private = draws
            .lock()
            .unwrap()
            .iter()
            .find_map(|d| {
                DhSecret::from_private_bytes(DhGroup::Curve25519, d)
                    .ok()
                    .filter(|s| s.public_value() == &gxi[..])
            })
            .expect("the initiator's X25519 private value is one of its draws");
        let gxy = private.agree(&gxr).expect("agreement");
        let hash = ike::crypto::HashAlgorithm::Sha256;
        let skeyid = skeyid_psk(hash, PSK, &ni, &nr);
        let keys = derive_phase1(
            hash,
            ike::crypto::Cipher::Aes128Cbc,
            skeyid,
            &gxy,
            &cookies.0,
            &cookies.1,
            &gxi,
            &gxr,
        );
        let (_, enc) = a.keylog_ike_sa(sa.id).expect("key log");
        assert_eq!(&keys.encryption_key[..], &enc[..], "derived phase-1 key matches the engine's");

        // The held-back QM1 of a second child.
        a.handle_command(now, Command::CreateChild(sa.id));
        let held = a.poll_transmit().expect("CreateChild sends QM1");
        assert!(a.poll_transmit().is_none());
        let mut s = Session {
            now,
            initiator: a,
            responder: b,
            cookies,
            keys,
            last_block,
            held_qm1: held.contents.clone(),
            held_mid: Header::parse(&held.contents, DEFAULT_MAX_MESSAGE_LEN).map_or(0, |h| h.message_id),
            exchanges: HashMap::new(),
            last_mid: None,
            events,
        };
        let (mid, plain) = s.observe(Side::Initiator, &held.contents).expect("QM1 decrypts");
        // Check the derivation end to end: the genuine QM1's HASH(1) verifies.
        let first = PayloadType(plain[0]);
        let hlen = usize::from(u16::from_be_bytes([plain[2], plain[3]]));
        let rest_len: usize = payloads(first, &plain[hlen..]).iter().map(|(_, n)| n).sum();
        assert_eq!(
            &plain[4..hlen],
            &s.keys.hash1(mid, &plain[hlen..hlen + rest_len])[..],
            "HASH(1) verifies"
        );
        s
    }

    /// Decrypts a datagram sent by `from` (or to it, for the fuzzer's own), updating its
    /// exchange's IV and nonces. Returns the message id and the plaintext body.
    fn observe(&mut self, engine: Side, datagram: &[u8]) -> Option<(u32, Vec<u8>)> {
        let h = Header::parse(datagram, DEFAULT_MAX_MESSAGE_LEN).ok()?;
        if !h.is_encrypted() || h.message_id == 0 || datagram.len() < HEADER_LEN + 16 {
            return None;
        }
        let x = self.exchange(engine, h.message_id);
        let iv = x.iv.clone();
        let mut body = datagram[HEADER_LEN..].to_vec();
        self.keys.cipher.decrypt(&self.keys.encryption_key, &iv, &mut body).ok()?;
        let x = self.exchanges.get_mut(&(engine, h.message_id))?;
        x.iv = datagram[datagram.len() - 16..].to_vec();
        if h.exchange_type == ExchangeType::QUICK_MODE {
            // The engine started the held exchange (its nonce is Ni_b); it answers the rest.
            if let Some(n) = nonce_of(&payloads(h.next_payload, &body)) {
                let ours = if engine == Side::Initiator && h.message_id == self.held_mid {
                    &mut x.ni_b
                } else {
                    &mut x.nr_b
                };
                if ours.is_empty() {
                    *ours = n;
                }
            }
        }
        Some((h.message_id, body))
    }

    fn exchange(&mut self, engine: Side, mid: u32) -> &mut Exchange {
        let first_iv = self.keys.phase2_iv(&self.last_block, mid);
        self.exchanges
            .entry((engine, mid))
            .or_insert_with(|| Exchange { iv: first_iv, ..Exchange::default() })
    }

    /// Seals one input datagram (see the module documentation) and delivers it, then lets
    /// both engines run their timers; returns what the target engine sent back.
    pub fn send(&mut self, input: &[u8]) -> Vec<Vec<u8>> {
        let Some((&control, rest)) = input.split_first() else { return Vec::new() };
        let (first, rest) = rest.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        let (mid_bytes, body) = rest.split_at(rest.len().min(4));
        let mut given = [0u8; 4];
        given[..mid_bytes.len()].copy_from_slice(mid_bytes);
        let given = u32::from_be_bytes(given);
        let side = if control & 1 == 0 { Side::Responder } else { Side::Initiator };
        let current = match side {
            Side::Responder => self.last_mid,
            Side::Initiator => Some(self.held_mid),
        };
        let mid = if control & 0x10 != 0 { given } else { current.unwrap_or(given) };
        if side == Side::Responder {
            self.last_mid = Some(mid);
        }
        let exchange_type =
            if control & 8 == 0 { ExchangeType::QUICK_MODE } else { ExchangeType::INFORMATIONAL };
        let plaintext = control & 0x20 != 0;

        // The body's own chain, for the nonce (HASH(3) needs ours) and the hash's extent.
        let parsed = payloads(PayloadType(first), body);
        let x = self.exchange(side, mid).clone();
        let hash = match (control >> 1) & 3 {
            0 => Some(self.keys.hash1(mid, body)),
            1 => Some(self.keys.hash2(mid, &x.ni_b, body)),
            2 => Some(self.keys.hash3(mid, &x.ni_b, &x.nr_b)),
            _ => None,
        };
        if exchange_type == ExchangeType::QUICK_MODE {
            if let Some(n) = nonce_of(&parsed) {
                let held = side == Side::Initiator && mid == self.held_mid;
                if let Some(e) = self.exchanges.get_mut(&(side, mid)) {
                    let theirs = if held { &mut e.nr_b } else { &mut e.ni_b };
                    if theirs.is_empty() {
                        *theirs = n;
                    }
                }
            }
        }
        let mut clear = Vec::new();
        let next = match &hash {
            Some(h) => {
                clear.extend_from_slice(&[first, 0]);
                clear.extend_from_slice(&u16::try_from(4 + h.len()).unwrap_or(u16::MAX).to_be_bytes());
                clear.extend_from_slice(h);
                PayloadType::HASH
            }
            None => PayloadType(first),
        };
        clear.extend_from_slice(body);
        if !plaintext {
            clear.resize(clear.len().div_ceil(16).max(1) * 16, 0);
            let _ = self.keys.cipher.encrypt(&self.keys.encryption_key, &x.iv, &mut clear);
        }
        let header = Header {
            initiator_cookie: self.cookies.0,
            responder_cookie: self.cookies.1,
            next_payload: next,
            version: 0x10,
            exchange_type,
            flags: if plaintext { 0 } else { FLAG_ENCRYPTION },
            message_id: mid,
            length: u32::try_from(HEADER_LEN + clear.len()).unwrap_or(u32::MAX),
        };
        let mut datagram = Vec::with_capacity(HEADER_LEN + clear.len());
        header.emit(&mut datagram);
        datagram.extend_from_slice(&clear);
        if !plaintext && clear.len() >= 16 {
            if let Some(e) = self.exchanges.get_mut(&(side, mid)) {
                e.iv = clear[clear.len() - 16..].to_vec();
            }
        }
        self.deliver(side, &datagram)
    }

    /// Hands a datagram to one engine (as from its peer), runs both engines' timers a
    /// second on, and returns what that engine sent, after observing it.
    pub fn deliver(&mut self, side: Side, datagram: &[u8]) -> Vec<Vec<u8>> {
        let (e, local, remote) = match side {
            Side::Responder => (&mut self.responder, RESPONDER, INITIATOR),
            Side::Initiator => (&mut self.initiator, INITIATOR, RESPONDER),
        };
        e.handle_datagram(self.now, port500(local), port500(remote), datagram);
        self.now += Duration::from_millis(100);
        let now = self.now;
        self.initiator.handle_timeout(now);
        self.responder.handle_timeout(now);
        let mut replies = Vec::new();
        for s in [Side::Responder, Side::Initiator] {
            loop {
                let t = match s {
                    Side::Responder => self.responder.poll_transmit(),
                    Side::Initiator => self.initiator.poll_transmit(),
                };
                let Some(t) = t else { break };
                if s == side {
                    let _ = self.observe(s, &t.contents);
                    replies.push(t.contents);
                }
            }
            loop {
                let ev = match s {
                    Side::Responder => self.responder.poll_event(),
                    Side::Initiator => self.initiator.poll_event(),
                };
                let Some(ev) = ev else { break };
                self.events.push((s, ev));
            }
        }
        replies
    }

    /// The Quick Mode plaintext (after HASH) and first payload type of a reply, for the
    /// corpus generator: decrypts with the exchange's IV before the reply.
    pub fn open_with(&self, iv: &[u8], datagram: &[u8]) -> Option<(PayloadType, Vec<u8>)> {
        let h = Header::parse(datagram, DEFAULT_MAX_MESSAGE_LEN).ok()?;
        let mut body = datagram.get(HEADER_LEN..)?.to_vec();
        self.keys.cipher.decrypt(&self.keys.encryption_key, iv, &mut body).ok()?;
        let hlen = usize::from(u16::from_be_bytes([*body.get(2)?, *body.get(3)?]));
        let first = PayloadType(*body.first()?);
        let rest_len: usize = payloads(first, body.get(hlen..)?).iter().map(|(_, n)| n).sum();
        let _ = h;
        Some((first, body.get(hlen..hlen + rest_len)?.to_vec()))
    }

    /// The IV of an exchange's next message as the session tracks it.
    pub fn iv(&mut self, side: Side, mid: u32) -> Vec<u8> {
        self.exchange(side, mid).iv.clone()
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}
