//! What the `attach` target and its corpus generator share: the genuine region images that
//! inputs corrupt, the input format, and the operations run on a region that attached.
//!
//! A region is at least 2 MiB (whole huge pages), too big to be a fuzzer input, so an input
//! is a list of edits to one of two genuine images built at start-up (small capacities,
//! SAs of every kind, policies of both families, events past the ring's size, a retired
//! slot waiting for a reader, a per-region hash seed fixed so that the images, and so the
//! seeds' meaning, are the same in every run):
//!
//! ```text
//! byte 0: bit 0 picks the image (0: SPI index, 1: SPI + destination index); bit 1 adds
//!         policy changes to the writer's operations (the first rebuilds the writer's
//!         index and compacts the classifier: slower, so only when asked)
//! then ops, each an op byte followed by its operands, until the input ends:
//!   op % 4 == 0  header:    off: u8 (x2, so 0..510 covers the static and dynamic header),
//!                           len: u8 (% 32), bytes
//!   op % 4 == 1  line:      idx: u16 LE (% the image's non-zero 64-byte lines),
//!                           off: u8 (% 64), len: u8 (% 64), bytes
//!   op % 4 == 2  absolute:  off: u24 LE (% image length), len: u8, bytes
//!   op % 4 == 3  resize:    n: u24 LE; the file becomes (n * 128) % (image length + 4097)
//!                           bytes long (truncated, or extended with zeros)
//! ```
//!
//! Every aligned 32-bit word an edit writes is also looked up as an SPI, so that a corrupted
//! SPI-index entry gets found. A zero magic would make `attach` wait 2 s for a creator that
//! never comes (by design), so the target turns a zero magic into a wrong one.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sadb::*;

/// Where `HeaderStatic::hash_seed` sits in the file.
const HASH_SEED_OFFSET: u64 = 64;
/// The first reader slot (right after the 4 KiB header); its `pid` is at +4.
const READER_SLOT_PID_OFFSET: usize = 4096 + 4;
/// A pid above any `pid_max` (2^22): the image's reader is a dead process, which writers
/// deregister, as a crashed espd's.
const DEAD_PID: u32 = 0x3fff_fff0;
const HASH_SEED: u64 = 0x5eed_5eed_0123_4567;

/// The capacities of both images.
pub fn capacities(spi_dst_index: bool) -> Capacities {
    Capacities { sas: 16, policies: 8, readers: 2, event_ring: 8, max_replay_window: 128, spi_dst_index }
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn v6(low: u16) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    x[14..].copy_from_slice(&low.to_be_bytes());
    x
}

/// A valid SA: AES-GCM-128 tunnel unless changed.
pub fn sa(spi: u32, dir: Direction) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 7;
    c.direction = dir as u8;
    c.mode = SaMode::Tunnel as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.integ = Integ::None as u8;
    c.replay_window = 64;
    c.src = v4([198, 18, 0, 1]);
    c.dst = v4([198, 18, 0, 2]);
    c.cipher_key = [spi as u8; 32];
    c.salt = [1, 2, 3, 4];
    c.added_unix = 1_700_000_000 + u64::from(spi);
    c
}

/// The SAs of both images.
pub fn sas() -> Vec<SaConfig> {
    let mut v = vec![sa(0x1001, Direction::In), sa(0x2001, Direction::Out)];
    let mut cbc = sa(0x1002, Direction::In);
    cbc.mode = SaMode::Transport as u8;
    cbc.family = 6;
    cbc.src = v6(1);
    cbc.dst = v6(2);
    cbc.cipher = Cipher::AesCbc as u8;
    cbc.cipher_key_len = 32;
    cbc.integ = Integ::HmacSha256_128 as u8;
    cbc.integ_key_len = 32;
    cbc.integ_key = [9; 64];
    cbc.replay_window = 128;
    v.push(cbc);
    let mut null = sa(0x2002, Direction::Out);
    null.cipher = Cipher::Null as u8;
    null.cipher_key_len = 0;
    null.integ = Integ::HmacSha1_96 as u8;
    null.integ_key_len = 20;
    null.flags = SA_FLAG_ESN | SA_FLAG_UDP_ENCAP;
    null.encap_sport = 4500;
    null.encap_dport = 4500;
    null.reqid = 8;
    v.push(null);
    let mut no_replay = sa(0x1003, Direction::In);
    no_replay.flags = SA_FLAG_NO_REPLAY;
    no_replay.replay_window = 0;
    no_replay.soft_packets = 10;
    no_replay.hard_packets = 20;
    v.push(no_replay);
    v.push(sa(0x2003, Direction::Out));
    v
}

fn policy(
    id: u32,
    dir: Direction,
    action: Action,
    family: u8,
    src: ([u8; 16], u8),
    dst: ([u8; 16], u8),
) -> PolicyConfig {
    PolicyConfig {
        id,
        priority: 100 + id,
        reqid: if action == Action::Protect { 7 } else { 0 },
        direction: dir as u8,
        action: action as u8,
        family,
        proto: 0,
        src: src.0,
        dst: dst.0,
        src_plen: src.1,
        dst_plen: dst.1,
        _pad: [0; 2],
        sport: [0, 65535],
        dport: [0, 65535],
        _pad2: 0,
    }
}

/// The policies of both images.
pub fn policies() -> Vec<PolicyConfig> {
    let (a, b) = ((v4([198, 18, 1, 0]), 24), (v4([198, 18, 2, 0]), 24));
    let mut tcp = policy(3, Direction::Out, Action::Bypass, 4, a, (v4([198, 18, 2, 128]), 25));
    tcp.proto = 6;
    tcp.dport = [443, 443];
    tcp.priority = 1;
    vec![
        policy(1, Direction::Out, Action::Protect, 4, a, b),
        policy(2, Direction::In, Action::Protect, 4, b, a),
        tcp,
        policy(4, Direction::Out, Action::Discard, 4, (v4([0; 4]), 0), (v4([0; 4]), 0)),
        policy(5, Direction::Out, Action::Protect, 6, (v6(0), 64), (v6(0x100), 120)),
        policy(6, Direction::In, Action::Bypass, 6, (v6(0x100), 120), (v6(0), 64)),
    ]
}

/// A scratch file for this process under /dev/shm (tmpfs), or the temporary directory.
pub fn scratch_path(tag: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
    dir.join(format!("sadb-fuzz-{}-{tag}", std::process::id()))
}

/// Builds one genuine image (see the module documentation).
pub fn build_image(spi_dst_index: bool) -> Vec<u8> {
    let path = scratch_path(if spi_dst_index { "image1" } else { "image0" });
    let _ = std::fs::remove_file(&path);
    drop(Region::create(&path, &capacities(spi_dst_index)).unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&HASH_SEED.to_ne_bytes(), HASH_SEED_OFFSET).unwrap();
    drop(f);
    let r = Arc::new(Region::attach(&path).unwrap());
    {
        let mut w = r.writer().unwrap();
        w.add_policies(&policies()).unwrap();
        for c in sas() {
            w.add_sa(&c).unwrap();
        }
    }
    let reader = r.register_reader(1).unwrap();
    let out = r.find_sa(&SaKey { spi: 0x2001, direction: Direction::Out, dst: None }).unwrap();
    reader.reserve_seq(out, 5, false).unwrap();
    reader.count_sa(out, 5, 500);
    reader.count_sa_drop(out, 2);
    let inb = reader.lookup_inbound(0x1001, Some(&v4([198, 18, 0, 2]))).unwrap();
    assert_eq!(reader.claim_inbound(inb, reader.index() + 1), reader.index() + 1);
    reader.hot(inb).seq.store(77, std::sync::atomic::Ordering::Relaxed);
    reader.count(5, 42);
    for i in 0..10u32 {
        // Ten events into a ring of eight: two are counted as dropped.
        let ev = Event {
            kind: EventKind::SoftExpire as u8,
            spi: i,
            value: u64::from(i),
            ..bytemuck::Zeroable::zeroed()
        };
        reader.emit(&ev);
    }
    // Deleted while the reader has not passed a quiescent point: its slot stays retired.
    r.writer().unwrap().del_sa(&SaKey { spi: 0x2003, direction: Direction::Out, dst: None }).unwrap();
    // Leave the reader registered, as a dataplane that died would (the mapping leaks,
    // once per image).
    std::mem::forget(reader);
    drop(r);
    let mut image = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    image[READER_SLOT_PID_OFFSET..READER_SLOT_PID_OFFSET + 4].copy_from_slice(&DEAD_PID.to_ne_bytes());
    image
}

/// A genuine image and the offsets of its non-zero 64-byte lines.
pub struct Image {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Offsets of the lines that hold something (where corruption is interesting).
    pub lines: Vec<usize>,
}

impl Image {
    /// Builds the image of [`build_image`].
    pub fn new(spi_dst_index: bool) -> Image {
        let bytes = build_image(spi_dst_index);
        let lines =
            (0..bytes.len()).step_by(64).filter(|&o| bytes[o..o + 64].iter().any(|&b| b != 0)).collect();
        Image { bytes, lines }
    }
}

/// Applies an input to the images: the file's bytes and the SPIs to look up.
pub fn mutate(data: &[u8], images: &[Image; 2]) -> (Vec<u8>, Vec<u32>) {
    let Some((&first, mut rest)) = data.split_first() else {
        return (images[0].bytes.clone(), Vec::new());
    };
    let first = first & 1;
    let img = &images[usize::from(first & 1)];
    let mut file = img.bytes.clone();
    let mut spis = Vec::new();
    let take = |n: usize, rest: &mut &[u8]| -> Option<Vec<u8>> {
        let (a, b) = rest.split_at_checked(n)?;
        *rest = b;
        Some(a.to_vec())
    };
    let le = |b: &[u8]| b.iter().rev().fold(0usize, |v, &x| (v << 8) | usize::from(x));
    while let Some(op) = take(1, &mut rest) {
        let (off, len) = match op[0] % 4 {
            0 => {
                let Some(h) = take(2, &mut rest) else { break };
                (usize::from(h[0]) * 2, usize::from(h[1]) % 32)
            }
            1 => {
                let Some(h) = take(4, &mut rest) else { break };
                let line = img.lines[le(&h[..2]) % img.lines.len()];
                (line + usize::from(h[2]) % 64, usize::from(h[3]) % 64)
            }
            2 => {
                let Some(h) = take(4, &mut rest) else { break };
                (le(&h[..3]) % img.bytes.len(), usize::from(h[3]))
            }
            _ => {
                let Some(h) = take(3, &mut rest) else { break };
                file.resize((le(&h) * 128) % (img.bytes.len() + 4097), 0);
                continue;
            }
        };
        let Some(bytes) = take(len, &mut rest) else { break };
        for (i, b) in bytes.iter().enumerate() {
            if let Some(d) = file.get_mut(off + i) {
                *d = *b;
            }
        }
        for w in bytes.chunks_exact(4).take(8) {
            spis.push(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    if file.len() >= 8 && file[..8] == [0; 8] {
        file[0] = 1;
    }
    (file, spis)
}

/// Writes `bytes` as the region file at `path` (mode 0600: attach refuses anything else).
pub fn write_file(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn flows(sas: &[SaEntry]) -> Vec<(Direction, Flow)> {
    let f = |family, src, dst, proto, dport| Flow { family, src, dst, proto, sport: 1234, dport };
    let mut v = vec![
        (Direction::Out, f(4, v4([198, 18, 1, 5]), v4([198, 18, 2, 5]), 17, 53)),
        (Direction::Out, f(4, v4([198, 18, 1, 5]), v4([198, 18, 2, 200]), 6, 443)),
        (Direction::In, f(4, v4([198, 18, 2, 5]), v4([198, 18, 1, 5]), 1, 0)),
        (Direction::Out, f(4, v4([203, 0, 113, 1]), v4([255, 255, 255, 255]), 6, 80)),
        (Direction::Out, f(6, v6(7), v6(0x105), 58, 0)),
        (Direction::In, f(6, v6(0x105), v6(7), 17, 500)),
        (Direction::In, f(6, [0xff; 16], [0xff; 16], 17, 500)),
    ];
    for e in sas.iter().take(8) {
        let fam = e.config.family;
        v.push((Direction::Out, f(fam, e.config.src, e.config.dst, 50, 0)));
        v.push((Direction::In, f(fam, e.config.dst, e.config.src, 50, 0)));
    }
    v
}

/// Attaches to the region at `path` and runs what `espd`, `espctl` and `iked` do with
/// one: list and look up SAs, register as a dataplane reader and use its lookups and hot
/// state, then take the writer lock and add, update and delete SAs and policies. Nothing
/// may panic; every slot handed out must lie inside the table.
pub fn exercise(path: &Path, extra_spis: &[u32], policy_changes: bool) {
    let r = match Region::attach(path) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains(&path.display().to_string()), "the refusal names the file: {m}");
            return;
        }
    };
    let caps = *r.capacities();
    let _ = (r.changes(), r.sa_count(), r.policy_count());
    let sas = r.list_sas();
    for e in &sas {
        assert!(e.slot < caps.sas);
        if let Some(again) = r.sa_entry(e.slot) {
            assert_eq!(again.slot, e.slot);
        }
    }
    let mut keys: Vec<(u32, [u8; 16])> = sas.iter().map(|e| (e.config.spi, e.config.dst)).collect();
    let known = self::sas().into_iter().map(|c| c.spi).chain([0x7777]);
    for s in known.chain(extra_spis.iter().copied()) {
        keys.push((s, v4([198, 18, 0, 2])));
    }
    keys.truncate(64);
    for &(spi, dst) in &keys {
        for direction in [Direction::In, Direction::Out] {
            if let Some(s) = r.find_sa(&SaKey { spi, direction, dst: Some(dst) }) {
                assert!(s < caps.sas, "slot {s} of {}", caps.sas);
            }
            // Outbound SAs of several peers may share an SPI: every one of them, and the
            // one a destination-less key names only when it is alone.
            let all = r.find_sas(spi, direction);
            assert!(all.iter().all(|&s| s < caps.sas), "slots {all:?} of {}", caps.sas);
            if let Some(s) = r.find_sa(&SaKey { spi, direction, dst: None }) {
                assert!(s < caps.sas, "slot {s} of {}", caps.sas);
            }
        }
    }
    let _ = r.list_policies();
    let _ = r.readers();

    // The dataplane's side.
    if let Ok(rd) = r.register_reader(9) {
        let spis: Vec<u32> = keys.iter().map(|k| k.0).collect();
        let dsts: Vec<[u8; 16]> = keys.iter().map(|k| k.1).collect();
        let mut out = vec![None; spis.len()];
        rd.lookup_burst(&spis, Some(&dsts), &mut out);
        for (i, slot) in out.iter().enumerate() {
            assert_eq!(*slot, rd.lookup_inbound(spis[i], Some(&dsts[i])), "burst and single lookups agree");
            let Some(s) = *slot else { continue };
            assert!(s < caps.sas);
            let _ = rd.sa_version(s);
            let _ = rd.read_sa(s);
            let _ = rd.is_live(s);
            let _ = rd.reserve_seq(s, 4, false);
            let _ = rd.reserve_seq(s, 1, true);
            let owner = rd.claim_inbound(s, rd.index() + 1);
            rd.release_inbound(s, owner);
            rd.count_sa(s, 1, 100);
            rd.count_sa_drop(s, 3);
            rd.count_sa_drop(s, 99);
            let _ = rd.replay_bitmap(s).len();
        }
        for (dir, f) in flows(&sas) {
            if let Some(m) = rd.lookup_policy(dir, &f) {
                assert!(m.slot < caps.policies);
                if let Some(s) = m.sa_slot {
                    assert!(s < caps.sas);
                    let _ = rd.reserve_seq(s, 1, false);
                }
                let _ = rd.acquire_due(m.slot, 5, 1);
            }
        }
        let _ = rd.acquire_due(u32::MAX, 5, 1);
        rd.emit(&Event { kind: EventKind::Acquire as u8, ..bytemuck::Zeroable::zeroed() });
        rd.count(3, 1);
        rd.count(999, 1);
        rd.quiescent();
        rd.offline();
    }

    // The control side's.
    let Ok(mut w) = r.writer() else { return };
    let mut n = 0;
    w.drain_events(|_, _| n += 1);
    assert!(n <= caps.readers as usize * caps.event_ring as usize, "{n} events drained");
    let _ = w.events_dropped();
    let _ = w.reclaim();
    let _ = w.retired_pending();
    let fresh = sa(0x7777, Direction::Out);
    if let Ok(s) = w.add_sa(&fresh) {
        assert!(s < caps.sas);
    }
    // The same SPI towards another peer is another SA; then the SPI alone names neither.
    let mut other = sa(0x7777, Direction::Out);
    other.dst = v4([198, 18, 0, 99]);
    if let Ok(s) = w.add_sa(&other) {
        assert!(s < caps.sas);
    }
    let _ = w.update_sa(&SaKey { spi: 0x7777, direction: Direction::Out, dst: None }, |c| c.soft_bytes = 1);
    let _ = w.del_sa(&SaKey { spi: 0x7777, direction: Direction::Out, dst: None });
    for e in sas.iter().take(4) {
        let Some(direction) = Direction::from_code(e.config.direction) else { continue };
        let key = SaKey { spi: e.config.spi, direction, dst: Some(e.config.dst) };
        let _ = w.update_sa(&key, |c| c.soft_bytes = 1);
        let _ = w.del_sa(&key);
    }
    // A policy change waits (up to 1 s) for live readers to pass the last flip's grace
    // period; the image's reader is dead, but the input may name a live process.
    if policy_changes && r.readers().iter().all(|i| !pid_alive(i.pid)) {
        let _ = w.add_policy(&policy(
            100,
            Direction::Out,
            Action::Bypass,
            4,
            (v4([198, 18, 9, 0]), 24),
            (v4([0; 4]), 0),
        ));
        let _ = w.del_policy(1);
        let _ = w.del_policy(100);
    }
    let _ = w.flush_sas();
}
