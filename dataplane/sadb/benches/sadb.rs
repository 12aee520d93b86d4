//! SA database benchmarks: inbound lookup per packet in bursts of 32 at 1 to 1,000,000 SAs,
//! policy lookup at 10 to 100,000 policies, SA installs per second while a reader runs, and
//! tunnel installs (an SA pair and its two policies, as iked installs a child SA) per second
//! at 1,000 to 100,000 tunnels while a reader classifies and looks SAs up.
//! `cargo bench -p sadb` (set SADB_BENCH_QUICK=1 for a short run). Prints a markdown table
//! and one JSON line per figure; repeated figures are medians with the min-max of the rounds.
//!
//! Environment: `SADB_BENCH_ONLY=sa,spd,tunnels` picks sections; `SADB_BENCH_ROUNDS` the
//! rounds per figure (default 5, tunnels 3); `SADB_BENCH_BUDGET` the seconds one tunnel run
//! may take before it stops and reports how far it got (default 30).

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

/// Median, min and max of a set of figures.
fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn section(name: &str) -> bool {
    std::env::var("SADB_BENCH_ONLY").map_or(true, |s| s.split(',').any(|x| x == name))
}

fn rounds(default: usize) -> usize {
    std::env::var("SADB_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default).max(1)
}

fn main() {
    let quick = std::env::var("SADB_BENCH_QUICK").is_ok();
    let mut rows = Vec::new();
    println!("| figure | value |\n|---|---|");
    if section("sa") {
        sa_bench(quick, &mut rows);
    }
    if section("spd") {
        spd_bench(quick, &mut rows);
    }
    if section("tunnels") {
        tunnel_bench(quick, &mut rows);
    }
    for r in rows {
        println!("{r}");
    }
}

fn sa_bench(quick: bool, rows: &mut Vec<String>) {
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
}

fn spd_bench(quick: bool, rows: &mut Vec<String>) {
    for &p in &[10u32, 1_000, 10_000, 100_000] {
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
        let mut per_round = Vec::new();
        for _ in 0..rounds(5) {
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
            per_round.push(t.elapsed().as_nanos() as f64 / total as f64);
            assert_eq!(hits, total, "every flow matched its protect policy");
        }
        let (ns, lo, hi) = stats(&mut per_round);
        println!(
            "| policy lookup, {p} policies (ns/packet, median of {} rounds (min-max); one batch {:.1} ms) | {ns:.1} ({lo:.1}-{hi:.1}) |",
            per_round.len(),
            compile.as_secs_f64() * 1e3
        );
        rows.push(format!(
            r#"{{"bench":"policy_lookup","policies":{p},"ns_per_packet":{ns:.2},"min":{lo:.2},"max":{hi:.2},"batch_ms":{:.2}}}"#,
            compile.as_secs_f64() * 1e3
        ));
        drop(rd);
        drop(region);
        let _ = std::fs::remove_file(&path);
    }
}

/// The policy pair of tunnel `i`: 198.18.0.0/16 to its own /32 in 10.0.0.0/8 and back.
fn tunnel_policies(i: u32) -> [PolicyConfig; 2] {
    let remote = v4(0x0a00_0000 + i);
    let local = v4(0xc612_0000);
    let out = PolicyConfig {
        id: 2 * i + 1,
        priority: 100,
        reqid: i + 1,
        direction: Direction::Out as u8,
        action: Action::Protect as u8,
        family: 4,
        proto: 0,
        src: local,
        dst: remote,
        src_plen: 16,
        dst_plen: 32,
        _pad: [0; 2],
        sport: [0, 65535],
        dport: [0, 65535],
        _pad2: 0,
    };
    let mut inb = out;
    (inb.id, inb.direction, inb.src, inb.dst, inb.src_plen, inb.dst_plen) =
        (2 * i + 2, Direction::In as u8, remote, local, 32, 16);
    [out, inb]
}

/// The SA pair of tunnel `i`.
fn tunnel_sas(i: u32) -> [SaConfig; 2] {
    let mut inb = sa(0x1000_0000 + 2 * i);
    inb.reqid = i + 1;
    let mut out = sa(0x1000_0001 + 2 * i);
    (out.reqid, out.direction, out.dst, out.src) =
        (i + 1, Direction::Out as u8, v4(0x0a00_0000 + i), inb.dst);
    [inb, out]
}

/// CPU time this thread has used (the scheduler's own count), so that a figure can be given
/// per CPU-second as well as per wall-clock second on a shared machine.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Tunnels installed one at a time, each as iked installs a child SA (inbound SA, outbound
/// SA, then its two policies as one batch, each under its own writer lock), while a reader
/// classifies and looks up bursts of 32 and passes a quiescent point per burst. The figure
/// "at N tunnels" is the rate over the last tenth (from 0.9 N to N installed).
fn tunnel_bench(quick: bool, rows: &mut Vec<String>) {
    let budget = std::env::var("SADB_BENCH_BUDGET").ok().and_then(|v| v.parse().ok()).unwrap_or(30.0);
    let sizes: &[u32] = if quick { &[1_000, 100_000] } else { &[1_000, 10_000, 100_000] };
    for &n in sizes {
        let mut last_tenth = Vec::new();
        let mut per_cpu = Vec::new();
        let mut overall = Vec::new();
        let mut reached = n;
        for _ in 0..rounds(3) {
            let path = region_path("tunnels");
            let caps =
                Capacities { sas: 2 * n + 1024, policies: 2 * n + 64, readers: 4, ..Capacities::default() };
            let region = Arc::new(Region::create(&path, &caps).unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let bg = {
                let (region, stop) = (region.clone(), stop.clone());
                std::thread::spawn(move || {
                    let rd = region.register_reader(1).unwrap();
                    let mut out = [None; 32];
                    let spis: Vec<u32> = (0..32).map(|k| 0x1000_0000 + 2 * k).collect();
                    let mut next = rng(7);
                    let mut bursts = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        rd.lookup_burst(&spis, None, &mut out);
                        for _ in 0..32 {
                            let f = Flow {
                                family: 4,
                                src: v4(0xc612_0005),
                                dst: v4(0x0a00_0000 + (next() % u64::from(n)) as u32),
                                proto: 17,
                                sport: 1000,
                                dport: 2000,
                            };
                            black_box(rd.lookup_policy(Direction::Out, &f));
                        }
                        rd.quiescent();
                        bursts += 1;
                    }
                    bursts
                })
            };
            let t = Instant::now();
            let mut tenth_start = None;
            let mut done = 0;
            for i in 0..n {
                if i == n - n / 10 {
                    tenth_start = Some((Instant::now(), thread_cpu()));
                }
                let [sin, sout] = tunnel_sas(i);
                {
                    let mut w = region.writer().unwrap();
                    w.add_sa(&sin).unwrap();
                    w.add_sa(&sout).unwrap();
                }
                region.writer().unwrap().add_policies(&tunnel_policies(i)).unwrap();
                done = i + 1;
                if t.elapsed().as_secs_f64() > budget {
                    break;
                }
            }
            let total = t.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            let bursts = bg.join().unwrap();
            assert!(bursts > 0, "the reader ran");
            reached = reached.min(done);
            overall.push(f64::from(done) / total);
            if done == n {
                let (s, cpu) =
                    tenth_start.map_or((total, 0.0), |(s, c)| (s.elapsed().as_secs_f64(), thread_cpu() - c));
                last_tenth.push(f64::from(n / 10) / s);
                per_cpu.push(f64::from(n / 10) / cpu.max(1e-9));
                // Every policy and its binding is in place.
                let rd = region.register_reader(0).unwrap();
                for i in [0, n / 2, n - 1] {
                    let f = Flow {
                        family: 4,
                        src: v4(0xc612_0005),
                        dst: v4(0x0a00_0000 + i),
                        proto: 17,
                        sport: 1,
                        dport: 2,
                    };
                    let m = rd.lookup_policy(Direction::Out, &f).expect("policy");
                    assert_eq!((m.id, m.action), (2 * i + 1, Action::Protect));
                    assert!(m.sa_slot.is_some(), "bound to its SA");
                }
            }
            drop(region);
            let _ = std::fs::remove_file(&path);
            if done < n {
                break;
            }
        }
        let (o, olo, ohi) = stats(&mut overall);
        if last_tenth.is_empty() {
            println!(
                "| tunnel installs/s towards {n} tunnels (reader running) | stopped after {budget} s at {reached} tunnels; {o:.0}/s on average |"
            );
            rows.push(format!(
                r#"{{"bench":"tunnel_install","tunnels":{n},"reached":{reached},"per_s_overall":{o:.0}}}"#
            ));
        } else {
            let (m, lo, hi) = stats(&mut last_tenth);
            let (c, clo, chi) = stats(&mut per_cpu);
            println!(
                "| tunnel installs/s at {n} tunnels (last tenth; reader running; median of {} (min-max)) | {m:.0} ({lo:.0}-{hi:.0}); per writer CPU-second {c:.0} ({clo:.0}-{chi:.0}); whole run {o:.0} ({olo:.0}-{ohi:.0}) |",
                last_tenth.len()
            );
            rows.push(format!(
                r#"{{"bench":"tunnel_install","tunnels":{n},"per_s":{m:.0},"min":{lo:.0},"max":{hi:.0},"per_cpu_s":{c:.0},"per_s_overall":{o:.0}}}"#
            ));
        }
    }
}
