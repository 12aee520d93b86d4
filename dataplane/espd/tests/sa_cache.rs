//! The per-lcore SA context cache against a real SA database: a context checked at the
//! region's change counter is reused without a version read until the counter moves, then
//! rebuilt if its record changed, and a deleted then reused slot is never served stale.

use espd::gw::sa_ctx::{Backends, Ctx, SaCache};
use sadb::*;

fn record(spi: u32, key: u8) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 1;
    c.direction = Direction::Out as u8;
    c.mode = SaMode::Tunnel as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.cipher_key = [key; 32];
    c.salt = [key; 4];
    c.backend = Backend::Rust as u8;
    c.replay_window = 64;
    c.dscp = 0xff;
    c.src[..4].copy_from_slice(&[198, 18, 0, 1]);
    c.dst[..4].copy_from_slice(&[198, 18, 0, 2]);
    c
}

/// The SPI the cached context of `slot` encapsulates with (the first ESP header word).
fn spi_of(cache: &mut SaCache, reader: &Reader, backends: &Backends, slot: u32, changes: u64) -> Option<u32> {
    let e = cache.get_at(reader, backends, slot, changes)?;
    let Ctx::Out(o) = &mut e.ctx else { panic!("outbound") };
    Some(o.spi())
}

#[test]
fn contexts_follow_the_change_counter() {
    let dir = tempfile::tempdir().unwrap();
    let caps = Capacities { sas: 8, policies: 4, readers: 2, ..Capacities::default() };
    let r = std::sync::Arc::new(Region::create(dir.path().join("sadb"), &caps).unwrap());
    r.writer().unwrap().add_sa(&record(0x100, 1)).unwrap();
    let reader = r.register_reader(0).unwrap();
    let backends = Backends::new(false);
    let mut cache = SaCache::new(caps.sas);
    let slot = r.find_sa(&SaKey { spi: 0x100, direction: Direction::Out, dst: None }).unwrap();

    let c0 = r.changes();
    assert_eq!(spi_of(&mut cache, &reader, &backends, slot, c0), Some(0x100));
    assert_eq!(spi_of(&mut cache, &reader, &backends, slot, c0), Some(0x100));
    assert_eq!(cache.builds, 1, "checked once at this counter value");

    // A new key for the SA: the counter moves, the next burst rebuilds.
    r.writer()
        .unwrap()
        .update_sa(&SaKey { spi: 0x100, direction: Direction::Out, dst: None }, |c| {
            c.cipher_key = [2; 32];
        })
        .unwrap();
    let c1 = r.changes();
    assert_ne!(c1, c0);
    assert_eq!(spi_of(&mut cache, &reader, &backends, slot, c1), Some(0x100));
    assert_eq!(cache.builds, 2, "rebuilt after the update");
    assert_eq!(spi_of(&mut cache, &reader, &backends, slot, c1), Some(0x100));
    assert_eq!(cache.builds, 2);

    // An unrelated write moves the counter: a version read, no rebuild.
    r.writer().unwrap().add_sa(&record(0x200, 3)).unwrap();
    let c2 = r.changes();
    assert_eq!(spi_of(&mut cache, &reader, &backends, slot, c2), Some(0x100));
    assert_eq!(cache.builds, 2, "same version, same context");

    // The SA is deleted and, once the reader has passed a quiescent point, its slot goes to
    // another SA: the next burst's counter differs, and the context is rebuilt for it.
    let mut w = r.writer().unwrap();
    w.del_sa(&SaKey { spi: 0x100, direction: Direction::Out, dst: None }).unwrap();
    reader.quiescent();
    w.reclaim();
    let mut reused = None;
    for spi in 0x300..0x308 {
        let s = w.add_sa(&record(spi, 4)).unwrap();
        if s == slot {
            reused = Some(spi);
            break;
        }
    }
    drop(w);
    let spi = reused.expect("the freed slot is handed out again");
    let c3 = r.changes();
    assert_eq!(spi_of(&mut cache, &reader, &backends, slot, c3), Some(spi));
    assert_eq!(cache.builds, 3);
}

/// The burst walk (`SaCache::warm`) starts once more than `WARM_FROM` slots have had
/// contexts, follows every kind of context (ipsec-mb GCM and CBC+HMAC, the Rust backend's
/// sessions in their wiping boxes, both directions) and slots with none, out of range or
/// deleted, and changes nothing: no context is rebuilt, each still holds its own SA.
#[test]
fn the_burst_walk_starts_past_its_threshold_and_changes_nothing() {
    use espd::gw::sa_ctx::WARM_FROM;
    let n = WARM_FROM + 1;
    let dir = tempfile::tempdir().unwrap();
    let caps = Capacities { sas: n + 8, policies: 4, readers: 2, ..Capacities::default() };
    let r = std::sync::Arc::new(Region::create(dir.path().join("sadb"), &caps).unwrap());
    let kind = |i: u32| -> SaConfig {
        let mut c = record(0x1000 + i, (i % 251) as u8 + 1);
        match i % 4 {
            0 => c.backend = Backend::IpsecMb as u8,
            1 => {
                c.backend = Backend::IpsecMb as u8;
                c.cipher = Cipher::AesCbc as u8;
                c.integ = Integ::HmacSha1_96 as u8;
                c.integ_key_len = 20;
                c.integ_key = [7; 64];
            }
            2 => c.direction = Direction::In as u8,
            _ => {}
        }
        c
    };
    let mut w = r.writer().unwrap();
    let slots: Vec<u32> = (0..n).map(|i| w.add_sa(&kind(i)).unwrap()).collect();
    drop(w);
    let reader = r.register_reader(0).unwrap();
    let backends = Backends::new(true);
    let mut cache = SaCache::new(caps.sas);
    let changes = r.changes();
    let spi = |c: &mut SaCache, slot: u32| -> Option<u32> {
        match &c.get_at(&reader, &backends, slot, changes)?.ctx {
            Ctx::Out(o) => Some(o.spi()),
            Ctx::In(i) => Some(i.spi()),
        }
    };
    for (i, &slot) in slots.iter().enumerate() {
        assert_eq!(spi(&mut cache, slot), Some(0x1000 + i as u32));
        assert_eq!(cache.warms(), i as u32 + 1 > WARM_FROM, "after {} contexts", i + 1);
    }
    assert_eq!(cache.builds, u64::from(n));

    // A burst over every kind, an empty slot, one past the end and a deleted SA.
    let empty = n + 3;
    let deleted = slots[5];
    r.writer().unwrap().del_sa(&SaKey { spi: 0x1005, direction: Direction::Out, dst: None }).unwrap();
    let burst: Vec<u32> =
        slots.iter().take(28).copied().chain([empty, u32::MAX, caps.sas, deleted]).collect();
    cache.warm(&reader, burst.iter().copied());
    assert_eq!(cache.builds, u64::from(n), "the walk builds nothing");
    for (i, &slot) in slots.iter().enumerate().filter(|&(_, &s)| s != deleted) {
        assert_eq!(spi(&mut cache, slot), Some(0x1000 + i as u32), "slot {slot}");
    }
}
