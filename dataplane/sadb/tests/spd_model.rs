//! The policy classifier against a naive model: every lookup after every step of a seeded
//! random sequence of adds and deletes (priority order, nested and equal prefixes,
//! protocols, ports, both families, both directions) gives what a linear scan of the live
//! policies in (priority, id) order gives; and readers running while policies change see
//! only what some state of the sequence during their lookup would give.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use sadb::*;

fn region(caps: &Capacities) -> (tempfile::TempDir, Arc<Region>) {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::create(dir.path().join("sadb"), caps).unwrap();
    (dir, Arc::new(r))
}

fn flow(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Flow {
    Flow { family: 4, src: v4(src), dst: v4(dst), proto, sport, dport }
}

fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn addr(fam: u8, v: u64) -> [u8; 16] {
    if fam == 4 {
        v4([198, 18, (v & 3) as u8, (v >> 2) as u8])
    } else {
        v6(0x2001_0db8, (v as u32) & 0x3ff)
    }
}

/// A random policy over a small address space, so that prefixes nest, repeat and tie.
fn random_policy(id: u32, v: u64, w: u64) -> PolicyConfig {
    let fam = if v & 1 == 0 { 4 } else { 6 };
    let dplens: [u8; 9] =
        if fam == 4 { [0, 8, 16, 22, 24, 24, 28, 32, 32] } else { [0, 32, 64, 112, 118, 120, 124, 128, 128] };
    let splens: [u8; 4] = if fam == 4 { [0, 16, 24, 32] } else { [0, 64, 120, 128] };
    let action = [Action::Bypass, Action::Discard, Action::Protect][(v >> 1) as usize % 3];
    let mut p = policy(
        id,
        if v >> 3 & 1 == 0 { Direction::Out } else { Direction::In },
        action,
        (addr(fam, w), splens[(v >> 4) as usize % 4]),
        (addr(fam, w >> 16), dplens[(v >> 6) as usize % 9]),
    );
    p.family = fam;
    p.priority = (v >> 10) as u32 % 12;
    p.reqid = if action == Action::Protect { id + 1000 } else { 0 };
    p.proto = [0, 0, 6, 17][(v >> 14) as usize % 4];
    if v >> 16 & 1 == 1 {
        let a = (v >> 17) as u16 % 60;
        p.dport = [a, a + (v >> 24) as u16 % 20];
    }
    if v >> 32 & 3 == 1 {
        let a = (v >> 34) as u16 % 60;
        p.sport = [a, a + 5];
    }
    p
}

fn random_flow(v: u64, w: u64) -> (Direction, Flow) {
    let fam = if v & 1 == 0 { 4 } else { 6 };
    let dir = if v >> 1 & 1 == 0 { Direction::Out } else { Direction::In };
    let f = Flow {
        family: fam,
        src: addr(fam, w),
        dst: addr(fam, w >> 16),
        proto: [6u8, 17, 1][(v >> 2) as usize % 3],
        sport: (v >> 8) as u16 % 70,
        dport: (v >> 20) as u16 % 90,
    };
    (dir, f)
}

/// The model: the first live policy in (priority, id) order that matches.
fn naive(live: &[PolicyConfig], dir: Direction, f: &Flow) -> Option<u32> {
    live.iter()
        .filter(|p| {
            p.direction == dir as u8
                && p.family == f.family
                && in_prefix(f.family, &f.dst, &p.dst, p.dst_plen)
                && in_prefix(f.family, &f.src, &p.src, p.src_plen)
                && (p.proto == 0 || p.proto == f.proto)
                && p.sport[0] <= f.sport
                && f.sport <= p.sport[1]
                && p.dport[0] <= f.dport
                && f.dport <= p.dport[1]
        })
        .min_by_key(|p| (p.priority, p.id))
        .map(|p| p.id)
}

#[test]
fn interleaved_adds_and_deletes_agree_with_a_linear_scan_at_every_step() {
    // A small table, so the pool and the hash table fill and the writer compacts often.
    let caps = Capacities { policies: 96, ..small_caps() };
    let (_d, r) = region(&caps);
    let reader = r.register_reader(0).unwrap();
    let mut rnd = rng(0x5eed_0f5e_1ec7_0125);
    let mut live: Vec<PolicyConfig> = Vec::new();
    let mut next_id = 1u32;
    let (mut checked, mut matched) = (0u64, 0u64);
    for step in 0..2500 {
        let v = rnd();
        let mut w = r.writer().unwrap();
        match v % 16 {
            // Delete a random live policy.
            0..=5 if !live.is_empty() => {
                let p = live.swap_remove((v >> 8) as usize % live.len());
                w.del_policy(p.id).unwrap();
            }
            // Now and then everything goes.
            6 if step % 200 == 0 => {
                assert_eq!(w.flush_policies().unwrap(), live.len());
                live.clear();
            }
            // A missing id is refused and changes nothing.
            7 => assert_eq!(w.del_policy(999_999), Err(SadbError::NoPolicy { id: 999_999 })),
            // Add a batch of one to four.
            _ => {
                let n = 1 + (v >> 8) as usize % 4;
                let batch: Vec<PolicyConfig> = (0..n)
                    .map(|_| {
                        next_id += 1;
                        random_policy(next_id, rnd(), rnd())
                    })
                    .collect();
                if live.len() + n <= caps.policies as usize {
                    w.add_policies(&batch).unwrap();
                    live.extend(batch);
                } else {
                    assert_eq!(w.add_policies(&batch), Err(SadbError::Full { what: "policy table" }));
                }
            }
        }
        drop(w);
        reader.quiescent();
        assert_eq!(r.policy_count() as usize, live.len(), "step {step}");
        for _ in 0..60 {
            let (dir, f) = random_flow(rnd(), rnd());
            let want = naive(&live, dir, &f);
            let got = reader.lookup_policy(dir, &f);
            assert_eq!(got.map(|m| m.id), want, "step {step}: {dir:?} {f:?}");
            if let Some(m) = got {
                matched += 1;
                let p = live.iter().find(|p| p.id == m.id).unwrap();
                assert_eq!((m.action as u8, m.reqid), (p.action, p.reqid), "step {step}");
            }
            checked += 1;
        }
    }
    let mut listed: Vec<u32> = r.list_policies().iter().map(|e| e.config.id).collect();
    let mut ids: Vec<u32> = live.iter().map(|p| p.id).collect();
    listed.sort_unstable();
    ids.sort_unstable();
    assert_eq!(listed, ids);
    eprintln!("{matched} of {checked} lookups matched a policy");
    assert!(checked >= 150_000);
    assert!(matched * 3 >= checked, "only {matched} of {checked} lookups matched a policy");
}

#[test]
fn a_second_writer_process_view_is_rebuilt_not_trusted() {
    // Two regions attached to one file stand for two processes' writers: each must see the
    // other's changes, not its own stale index.
    let (d, r) = region(&Capacities { policies: 64, ..small_caps() });
    let other = Region::attach(d.path().join("sadb")).unwrap();
    let reader = r.register_reader(0).unwrap();
    let any4 = (v4([0, 0, 0, 0]), 0);
    let p = |id: u32, prio: u32| {
        let mut p = policy(id, Direction::Out, Action::Bypass, any4, any4);
        p.priority = prio;
        p
    };
    let f = flow([198, 18, 0, 1], [198, 19, 0, 1], 17, 1, 2);
    r.writer().unwrap().add_policy(&p(1, 50)).unwrap();
    // A writer that finds another's changes compacts into the other bank, after the grace
    // period of the last flip.
    reader.quiescent();
    other.writer().unwrap().add_policy(&p(2, 10)).unwrap();
    reader.quiescent();
    assert_eq!(reader.lookup_policy(Direction::Out, &f).map(|m| m.id), Some(2));
    reader.quiescent();
    assert_eq!(r.writer().unwrap().add_policy(&p(2, 5)), Err(SadbError::DuplicatePolicy { id: 2 }));
    reader.quiescent();
    r.writer().unwrap().del_policy(2).unwrap();
    reader.quiescent();
    assert_eq!(reader.lookup_policy(Direction::Out, &f).map(|m| m.id), Some(1));
    reader.quiescent();
    assert_eq!(other.writer().unwrap().del_policy(2), Err(SadbError::NoPolicy { id: 2 }));
    other.writer().unwrap().del_policy(1).unwrap();
    reader.quiescent();
    assert_eq!(reader.lookup_policy(Direction::Out, &f), None);
}

#[test]
fn readers_see_a_state_of_the_sequence_never_a_torn_or_stale_one() {
    // The writer applies a sequence of single adds and deletes known to the reader too;
    // after each it publishes how many it has done. A lookup made while `a` to `b` were done
    // must give what one of the states a..=b+1 gives (b+1: the change in progress).
    let caps = Capacities { policies: 64, ..small_caps() };
    let (_d, r) = region(&caps);
    let mut rnd = rng(0xc0ff_ee00_1234_5678);
    // (add, policy): the sequence.
    let mut ops: Vec<(bool, PolicyConfig)> = Vec::new();
    let mut live: Vec<PolicyConfig> = Vec::new();
    for id in 1..4000u32 {
        let v = rnd();
        if live.len() >= 48 || (!live.is_empty() && v.is_multiple_of(3)) {
            let p = live.swap_remove((v >> 8) as usize % live.len());
            ops.push((false, p));
        } else {
            let p = random_policy(id, rnd(), rnd());
            live.push(p);
            ops.push((true, p));
        }
    }
    let ops = Arc::new(ops);
    let done = Arc::new(AtomicUsize::new(0));
    let looked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (r, ops, done, stop, looked) =
            (r.clone(), ops.clone(), done.clone(), stop.clone(), looked.clone());
        std::thread::spawn(move || {
            let reader = r.register_reader(1).unwrap();
            let mut rnd = rng(77);
            let mut base: Vec<PolicyConfig> = Vec::new();
            let mut at = 0usize;
            let mut lookups = 0u64;
            let apply = |set: &mut Vec<PolicyConfig>, (add, p): &(bool, PolicyConfig)| {
                if *add {
                    set.push(*p);
                } else {
                    set.retain(|q| q.id != p.id);
                }
            };
            while !stop.load(Ordering::Acquire) {
                let (dir, f) = random_flow(rnd(), rnd());
                let a = done.load(Ordering::Acquire);
                let got = reader.lookup_policy(dir, &f);
                let b = done.load(Ordering::Acquire);
                while at < a {
                    apply(&mut base, &ops[at]);
                    at += 1;
                }
                let mut set = base.clone();
                let mut ok = naive(&set, dir, &f) == got.map(|m| m.id);
                for op in &ops[a..(b + 1).min(ops.len())] {
                    if ok {
                        break;
                    }
                    apply(&mut set, op);
                    ok = naive(&set, dir, &f) == got.map(|m| m.id);
                }
                assert!(ok, "lookup while {a}..={b} changes were done gave {got:?} for {dir:?} {f:?}");
                if let Some(m) = got {
                    // The slot's header belongs to the policy the classifier named.
                    let p = ops.iter().find(|(_, p)| p.id == m.id).unwrap().1;
                    assert_eq!((m.action as u8, m.reqid), (p.action, p.reqid));
                    // Until this reader's next quiescent point the slot is the policy's:
                    // deleted meanwhile, it is not yet another policy's, however many
                    // changes the writer makes.
                    let t = std::time::Instant::now();
                    while done.load(Ordering::Acquire) < b + 3
                        && t.elapsed() < std::time::Duration::from_micros(300)
                        && !stop.load(Ordering::Acquire)
                    {
                        std::thread::yield_now();
                    }
                    let reused =
                        r.list_policies().into_iter().find(|e| e.slot == m.slot && e.config.id != m.id);
                    assert!(
                        reused.is_none(),
                        "slot {} of policy {} reused before a grace period: {reused:?}",
                        m.slot,
                        m.id
                    );
                }
                reader.quiescent();
                lookups += 1;
                looked.store(lookups as usize, Ordering::Release);
            }
            lookups
        })
    };
    for (i, (add, p)) in ops.iter().enumerate() {
        let mut w = r.writer().unwrap();
        if *add {
            w.add_policy(p).unwrap();
        } else {
            w.del_policy(p.id).unwrap();
        }
        drop(w);
        done.store(i + 1, Ordering::Release);
        // Keep the reader in step: about one lookup per change at least.
        let t = std::time::Instant::now();
        while looked.load(Ordering::Acquire) < i / 2 && t.elapsed() < std::time::Duration::from_millis(5) {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Release);
    let lookups = checker.join().unwrap();
    assert!(lookups > 1000, "the reader ran alongside ({lookups} lookups)");
}
