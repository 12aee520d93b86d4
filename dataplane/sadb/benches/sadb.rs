//! SA database benchmarks: inbound lookup per packet in bursts of 32 at 1 to 1,000,000 SAs,
//! policy lookup at 10 to 10,000 policies, and SA installs per second while a reader runs.
//! `cargo bench -p sadb` (set SADB_BENCH_QUICK=1 for a short run). Prints a markdown table
//! and one JSON line per figure.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sadb::*;

fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn v4(a: u32) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a.to_be_bytes());
    x
}

fn sa(spi: u32) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 1;
    c.direction = Direction::In as u8;
    c.mode = SaMode::Tunnel as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.replay_window = 64;
    c.src = v4(0xc612_0002);
    c.dst = v4(0xc612_0001);
    c
}

/// The region lives under `SADB_BENCH_DIR` (default /dev/shm; a hugetlbfs mount such as
/// /dev/hugepages measures 2 MiB pages).
fn region_path(tag: &str) -> std::path::PathBuf {
    let dir = std::env::var("SADB_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let p = std::path::PathBuf::from(format!("{dir}/sadb-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn main() {
    let quick = std::env::var("SADB_BENCH_QUICK").is_ok();
    let mut rows = Vec::new();
    println!("| figure | value |\n|---|---|");
    for &n in &[1u32, 1_000, 100_000, 1_000_000] {
        let path = region_path("lookup");
        let caps = Capacities { sas: n.max(64), readers: 4, ..Capacities::default() };
        let region = Arc::new(Region::create(&path, &caps).unwrap());
        // Installs, timed, while a reader thread looks up and passes quiescent points.
        let stop = Arc::new(AtomicBool::new(false));
        let bg = {
            let (region, stop) = (region.clone(), stop.clone());
            std::thread::spawn(move || {
                let rd = region.register_reader(1).unwrap();
                let mut out = [None; 32];
                let spis: Vec<u32> = (1..=32).collect();
                let mut bursts = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rd.lookup_burst(&spis, None, &mut out);
                    rd.quiescent();
                    bursts += 1;
                }
                bursts
            })
        };
        let mut next = rng(0x1234_5678 + u64::from(n));
        let mut spis = Vec::with_capacity(n as usize);
        let t = Instant::now();
        {
            let mut w = region.writer().unwrap();
            while spis.len() < n as usize {
                let spi = (next() as u32) | 0x100;
                if w.add_sa(&sa(spi)).is_ok() {
                    spis.push(spi);
                }
            }
        }
        let install = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        let bursts = bg.join().unwrap();
        if n >= 1_000 {
            let rate = f64::from(n) / install.as_secs_f64();
            println!("| SA installs/s at {n} SAs (one writer lock, a reader running: {bursts} bursts) | {rate:.0} |");
            rows.push(format!(r#"{{"bench":"sa_install","sas":{n},"per_s":{rate:.0}}}"#));
        }
        // Lookups: random present SPIs, bursts of 32, quiescent after each burst, plus the
        // version read a dataplane does to validate its cached context.
        let rd = region.register_reader(0).unwrap();
        let mut burst = [0u32; 32];
        let mut out = [None; 32];
        let total: u64 = if quick { 2_000_000 } else { 20_000_000 };
        let pool: Vec<[u32; 32]> = (0..4096)
            .map(|_| {
                let mut b = [0u32; 32];
                for s in &mut b {
                    *s = spis[(next() % u64::from(n)) as usize];
                }
                b
            })
            .collect();
        let t = Instant::now();
        let mut found = 0u64;
        let mut i = 0usize;
        while (i as u64) * 32 < total {
            burst.copy_from_slice(&pool[i % pool.len()]);
            rd.lookup_burst(black_box(&burst), None, &mut out);
            for s in out.iter().flatten() {
                found += u64::from(rd.sa_version(*s)) & 1 ^ 1;
            }
            rd.quiescent();
            i += 1;
        }
        let ns = t.elapsed().as_nanos() as f64 / total as f64;
        assert_eq!(found, total, "every SPI was found");
        println!("| inbound lookup, burst 32, {n} SAs (ns/packet) | {ns:.1} |");
        rows.push(format!(r#"{{"bench":"sa_lookup_burst32","sas":{n},"ns_per_packet":{ns:.2}}}"#));
        drop(rd);
        drop(region);
        let _ = std::fs::remove_file(&path);
    }

    for &p in &[10u32, 1_000, 10_000] {
        let path = region_path("spd");
        let caps = Capacities { sas: 64, policies: p + 16, readers: 4, ..Capacities::default() };
        let region = Arc::new(Region::create(&path, &caps).unwrap());
        // p protect policies with distinct /24 destinations under 198.18.0.0/15 and
        // 10.0.0.0/8, and one low-priority catch-all bypass, as a hub gateway has.
        let mut ps: Vec<PolicyConfig> = (0..p)
            .map(|i| PolicyConfig {
                id: i + 1,
                priority: 100,
                reqid: i + 1,
                direction: Direction::Out as u8,
                action: Action::Protect as u8,
                family: 4,
                proto: 0,
                src: v4(0xc612_0000),
                dst: v4(0x0a00_0000 | (i << 8)),
                src_plen: 16,
                dst_plen: 24,
                _pad: [0; 2],
                sport: [0, 65535],
                dport: [0, 65535],
                _pad2: 0,
            })
            .collect();
        let mut catch = ps[0];
        (catch.id, catch.priority, catch.action, catch.reqid, catch.dst_plen, catch.src_plen) =
            (p + 1, 1000, Action::Bypass as u8, 0, 0, 0);
        ps.push(catch);
        let t = Instant::now();
        region.writer().unwrap().add_policies(&ps).unwrap();
        let compile = t.elapsed();
        let rd = region.register_reader(0).unwrap();
        let mut next = rng(99);
        let flows: Vec<Flow> = (0..4096)
            .map(|_| Flow {
                family: 4,
                src: v4(0xc612_0000 | (next() as u32 & 0xffff)),
                dst: v4(0x0a00_0000 | ((next() % u64::from(p)) as u32) << 8 | (next() as u32 & 0xff)),
                proto: 17,
                sport: 1000,
                dport: 2000,
            })
            .collect();
        let total: u64 = if quick { 2_000_000 } else { 10_000_000 };
        let t = Instant::now();
        let mut hits = 0u64;
        for k in 0..total {
            let f = &flows[(k % 4096) as usize];
            if let Some(m) = rd.lookup_policy(Direction::Out, black_box(f)) {
                hits += u64::from(m.action == Action::Protect);
            }
            if k % 32 == 31 {
                rd.quiescent();
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / total as f64;
        assert_eq!(hits, total, "every flow matched its protect policy");
        println!(
            "| policy lookup, {p} policies (ns/packet; compile {:.1} ms) | {ns:.1} |",
            compile.as_secs_f64() * 1e3
        );
        rows.push(format!(
            r#"{{"bench":"policy_lookup","policies":{p},"ns_per_packet":{ns:.2},"compile_ms":{:.2}}}"#,
            compile.as_secs_f64() * 1e3
        ));
        drop(rd);
        drop(region);
        let _ = std::fs::remove_file(&path);
    }
    for r in rows {
        println!("{r}");
    }
}
