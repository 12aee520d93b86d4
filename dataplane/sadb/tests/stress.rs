//! Multi-process stress test of the publish/reclaim protocol.
//!
//! The parent is the writer: it adds, updates and deletes SAs as fast as it can (at least a
//! million operations). Two reader processes (this same binary, started with
//! `SADB_STRESS_ROLE=reader`) look SPIs up in bursts of 32 and check that every SA they
//! see is self-consistent: its key bytes are derived from its SPI and a generation, so a
//! torn read (half of one generation, half of another) or a read of a slot reclaimed and
//! reused for another SPI shows up as a mismatch. One reader is killed with SIGKILL in the
//! middle: the writer must detect it and keep reclaiming.
//!
//! `harness = false`: the same file is the parent and the children.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sadb::*;

/// SPIs are drawn from a small space so readers hit live SAs often.
const SPI_SPACE: u32 = 4096;

fn main() {
    match std::env::var("SADB_STRESS_ROLE").as_deref() {
        Ok("reader") => reader(),
        _ => writer(),
    }
}

fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A reader process: looks up until the stop file appears, then prints its counts.
fn reader() {
    let path = std::env::var("SADB_STRESS_PATH").expect("path");
    let stop = format!("{path}.stop");
    let region = Arc::new(Region::attach(&path).expect("attach"));
    let r = region.register_reader(std::process::id()).expect("register");
    println!("registered");
    let mut next = rng(u64::from(std::process::id()) * 0x9e37_79b9);
    let (mut lookups, mut hits, mut bad, mut gone) = (0u64, 0u64, 0u64, 0u64);
    let mut spis = [0u32; 32];
    let mut slots = [None; 32];
    let mut bursts = 0u64;
    loop {
        for s in &mut spis {
            *s = 1 + (next() % u64::from(SPI_SPACE)) as u32;
        }
        r.lookup_burst(&spis, None, &mut slots);
        for (spi, slot) in spis.iter().zip(&slots) {
            lookups += 1;
            let Some(slot) = *slot else { continue };
            match r.read_sa(slot) {
                // Deleted after the lookup: the slot is retired, not yet reused. Fine.
                None => gone += 1,
                Some((cfg, version)) => {
                    hits += 1;
                    if cfg.spi != *spi || !consistent(&cfg) || version % 2 != 0 {
                        bad += 1;
                    }
                }
            }
        }
        r.quiescent();
        bursts += 1;
        if bursts.is_multiple_of(256) && Path::new(&stop).exists() {
            break;
        }
    }
    println!("lookups={lookups} hits={hits} gone={gone} bad={bad}");
    std::process::exit(i32::from(bad != 0));
}

fn spawn_reader(path: &Path) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SADB_STRESS_ROLE", "reader")
        .env("SADB_STRESS_PATH", path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reader");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "registered");
    (child, out)
}

fn writer() {
    let ops_target: u64 =
        std::env::var("SADB_STRESS_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sadb");
    let caps = Capacities { sas: 2048, readers: 8, ..Capacities::default() };
    let region = Region::create(&path, &caps).unwrap();
    let (mut a, mut a_out) = spawn_reader(&path);
    let (mut b, _b_out) = spawn_reader(&path);
    let victim = b.id();
    assert_eq!(region.readers().len(), 2);

    let mut next = rng(0x1234_5678_9abc_def1);
    // live[spi] = Some(generation)
    let mut live: Vec<Option<u8>> = vec![None; SPI_SPACE as usize + 1];
    let mut n_live = 0usize;
    let (mut adds, mut updates, mut dels, mut full) = (0u64, 0u64, 0u64, 0u64);
    let mut killed_at = None;
    let mut max_pending = 0u32;
    let start = Instant::now();
    let mut w = region.writer().unwrap();
    let mut ops = 0u64;
    while ops < ops_target {
        let spi = 1 + (next() % u64::from(SPI_SPACE)) as u32;
        let key = SaKey { spi, direction: Direction::In, dst: None };
        let generation = (ops & 0xff) as u8;
        match live[spi as usize] {
            None if n_live < 1800 => match w.add_sa(&{
                let mut c = gcm_sa(spi, Direction::In, generation);
                fill_key(&mut c, generation);
                c
            }) {
                Ok(_) => {
                    live[spi as usize] = Some(generation);
                    n_live += 1;
                    adds += 1;
                }
                // Every slot may be retired, waiting for the readers: not an error.
                Err(SadbError::Full { .. }) => {
                    full += 1;
                    continue;
                }
                Err(e) => panic!("add {spi:#x}: {e}"),
            },
            None => continue,
            Some(_) if next().is_multiple_of(3) => {
                w.update_sa(&key, |c| fill_key(c, generation)).unwrap();
                live[spi as usize] = Some(generation);
                updates += 1;
            }
            Some(_) => {
                w.del_sa(&key).unwrap();
                live[spi as usize] = None;
                n_live -= 1;
                dels += 1;
            }
        }
        ops += 1;
        max_pending = max_pending.max(w.retired_pending());
        if killed_at.is_none() && ops == ops_target / 3 {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(victim as i32, libc::SIGKILL) };
            b.wait().unwrap();
            killed_at = Some(ops);
        }
    }
    let elapsed = start.elapsed();
    drop(w);

    // The killed reader is found and dropped; reclamation went on after it died.
    let w = region.writer().unwrap();
    w.synchronize(Duration::from_secs(5)).expect("the live reader passes a quiescent point");
    drop(w);
    let readers = region.readers();
    assert_eq!(readers.len(), 1, "the killed reader was deregistered: {readers:?}");
    assert_eq!(readers[0].pid, a.id());
    let mut w = region.writer().unwrap();
    w.reclaim();
    assert_eq!(w.retired_pending(), 0, "every retired slot was reclaimed");
    drop(w);
    assert!(max_pending < caps.sas, "retired slots never filled the table for good (max {max_pending})");

    std::fs::write(format!("{}.stop", path.display()), b"").unwrap();
    let status = a.wait().unwrap();
    let mut report = String::new();
    a_out.read_line(&mut report).unwrap();
    println!("stress: {ops} writer operations ({adds} adds, {updates} updates, {dels} deletes, {full} full) in {elapsed:?}; reader killed at {killed_at:?}; surviving reader: {}", report.trim());
    assert!(status.success(), "the reader saw a torn or reclaimed SA: {report}");
    let hits: u64 = report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("hits="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(hits > 10_000, "the reader really looked at live SAs: {report}");
    assert_eq!(adds + updates + dels, ops_target);
    assert!(
        adds > ops_target / 4 && dels > ops_target / 4 && updates > ops_target / 10,
        "a real mix of operations"
    );
    // Every SA the writer believes live is there with its last generation.
    for (spi, g) in live.iter().enumerate().filter_map(|(s, g)| g.map(|g| (s as u32, g))) {
        let slot = region.find_sa(&SaKey { spi, direction: Direction::In, dst: None }).unwrap();
        assert_eq!(region.sa_entry(slot).unwrap().config.salt, [g; 4]);
    }
    println!("stress: 1 passed, 0 failed");
}
