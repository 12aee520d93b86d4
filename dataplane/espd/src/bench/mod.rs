//! `espd bench`: a built-in traffic source, as testpmd's txonly mode, in front of the real
//! gateway pipeline.
//!
//! The gateway is set up exactly as `--config` would set it up (the configuration is
//! generated: two ports, a route to the remote networks, static neighbours, an SA database
//! in /dev/shm filled with one SA pair and one policy per tunnel). Each worker lcore, instead
//! of polling RX, fills bursts of mbufs from templates and hands them to the gateway
//! worker's own stages (`Worker::receive`, `run_stages`, `end_iteration`): classification,
//! policy and SA lookup, ESP with real keys, the replay check and update, routing, the
//! Ethernet rewrite and TX to the ports (`net_null` or `net_ring`). Inbound packets are
//! pre-generated with the peer's keys and increasing sequence numbers (`traffic::EspPool`),
//! and the replay windows are re-armed between passes over the pool.
//!
//! For each configuration (mode × size for each SA count) it prints a table while running
//! and one JSON line at the end (see `Record`).

pub mod lcore;
pub mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dpdk::{Eal, Mempool, Multi, Port, Ring};
use esp::crypto::Operation;
use sadb::Direction;
use serde::Serialize;

use crate::bench::lcore::{CryptoCalibration, Job, Live, Outcome};
use crate::bench::traffic::{EspPool, PlainSource, Plan, ETH, IMIX};
use espd::cli::{Algorithm, BenchArgs, BenchBackend, BenchMode, Family, PacketSize};
use espd::config::Config;
use espd::counters::{self, TRAFFIC_BASE};
use espd::error::RunError;
use espd::gw::sa_ctx::Backends;
use espd::gw::worker::{Handoff, Worker, WorkerPort};

/// Latency percentiles in ns.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Cycles per packet, split.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cost {
    /// Filling mbufs from the source, classification (policy lookup included) and TX.
    pub io_classify: f64,
    /// The backend's raw crypto for the same packets (calibrated on the worker's lcore).
    pub crypto: f64,
    /// Everything else: SA lookup, sequence numbers, the ESP engine around the cipher,
    /// replay check and update, routing, the Ethernet rewrite, counters.
    pub rest: f64,
}

/// TSC cycles per packet in each stage (`--stages`), summed over workers' packets. Not
/// scaled by the share of the core: read them beside `cpu_share`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stages {
    /// The bench's traffic source: allocating and filling mbufs (not the gateway's work).
    pub fill: f64,
    /// RX accounting, parsing and classification, the flow cache or SPD.
    pub classify: f64,
    /// SPI index and replay owner, or SA context, MTU and next hop.
    pub lookup: f64,
    /// The ESP engine around crypto.
    pub esp: f64,
    /// The crypto runner's call.
    pub crypto: f64,
    /// Counters and lifetimes, routing, Ethernet rewrite.
    pub post: f64,
    /// TX flush and the quiescent point.
    pub tx: f64,
}

/// One configuration's results: the JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Mode.
    pub mode: BenchMode,
    /// Algorithm and key size, as `aes-gcm-128`.
    pub algorithm: String,
    /// Crypto backend.
    pub backend: BenchBackend,
    /// 4 or 6.
    pub family: u8,
    /// Frame size (plaintext frame, FCS excluded) or `imix`.
    pub size: serde_json::Value,
    /// Average plaintext frame size.
    pub avg_frame: f64,
    /// Tunnels (SA pairs).
    pub sas: u32,
    /// Packets per burst.
    pub burst: usize,
    /// Worker lcores.
    pub workers: usize,
    /// Seconds measured (per worker, re-arming excluded, averaged).
    pub duration_s: f64,
    /// Packets sent in the measured phase.
    pub packets: u64,
    /// Million packets per second sent (sum over workers).
    pub mpps: f64,
    /// Gbit/s of plaintext frames.
    pub gbps: f64,
    /// Gbit/s of the frames sent (ESP frames when encapsulating).
    pub gbps_wire: f64,
    /// Cycles per packet on the worker's CPU (TSC time scaled by `cpu_share`).
    pub cycles_per_packet: f64,
    /// Split of `cycles_per_packet`.
    pub cost: Cost,
    /// Packets per second the raw crypto alone allows on one worker, in millions.
    pub crypto_only_mpps: f64,
    /// Per-burst time divided by the burst's packets, ns.
    pub latency_ns: Percentiles,
    /// Per-packet latency from filling its burst to TX, ns.
    pub packet_latency_ns: Percentiles,
    /// Offered load per worker when paced, Mpps.
    pub rate_mpps: Option<f64>,
    /// Packets not sent, by reason (warm-up included); expected empty.
    pub drops: BTreeMap<String, u64>,
    /// Passes over the ESP pool (each followed by a re-arm of the replay windows).
    pub passes: u64,
    /// Mbuf allocation failures (bursts skipped).
    pub no_mbuf: u64,
    /// Cycles per packet per stage, with `--stages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Stages>,
    /// Share of the measured time the workers' threads were on their CPU (1.0 on a quiet
    /// machine; less when other tasks shared the core), from the kernel's schedstat.
    pub cpu_share: Option<f64>,
    /// Mpps per second of CPU the workers actually had (`mpps / cpu_share`): the figure to
    /// compare across runs on a shared machine.
    pub mpps_on_cpu: Option<f64>,
    /// TSC frequency.
    pub tsc_hz: u64,
}

fn algorithm_name(a: Algorithm, bits: u16) -> String {
    match a {
        Algorithm::AesGcm => format!("aes-gcm-{bits}"),
        Algorithm::AesCbcSha1 => format!("aes-cbc-{bits}-hmac-sha1-96"),
        Algorithm::AesCbcSha256 => format!("aes-cbc-{bits}-hmac-sha256-128"),
    }
}

fn sizes_of(s: PacketSize) -> (Vec<usize>, serde_json::Value) {
    match s {
        PacketSize::Fixed(n) => (vec![n], serde_json::Value::from(n)),
        PacketSize::Imix => (IMIX.to_vec(), serde_json::Value::from("imix")),
    }
}

/// ESP length (header to ICV) of a tunnel-mode packet whose plaintext frame is `frame` bytes,
/// and the length of the frame that carries it.
fn esp_lengths(layout: esp::crypto::Layout, frame: usize, v6: bool) -> (usize, usize) {
    let inner = frame.saturating_sub(ETH).max(if v6 { 48 } else { 28 });
    let align = layout.block_len.max(4);
    let padded = (inner + 2).next_multiple_of(align);
    let esp = 8 + layout.iv_len + padded + layout.icv_len;
    (esp, ETH + if v6 { 40 } else { 20 } + esp)
}

/// The running gateway objects shared by every configuration.
struct Rig {
    eal: Eal,
    pool: Mempool,
    ports: Vec<(Port, espd::config::Role, bool, u16)>,
    ifaces: Arc<Vec<espd::net::addr::Interface>>,
    routes: Arc<espd::net::route::RouteTable>,
    neigh: Arc<espd::net::neigh::NeighborTable>,
    rings: Arc<Vec<Handoff>>,
    lcores: Vec<u32>,
    plan: Plan,
}

/// Runs every configuration with an initialised EAL; prints the JSON lines on stdout as it
/// goes and returns the records.
pub fn run(eal: &Eal, args: &BenchArgs, stop: Arc<AtomicBool>) -> Result<Vec<Record>, RunError> {
    let all = dpdk::lcore::workers(eal);
    let k = args.workers.unwrap_or(all.len()).min(all.len());
    if k == 0 {
        return Err(RunError::config(
            "no worker lcore: give the EAL at least two, e.g. -l 0,1 (lcore 0 supervises)",
        ));
    }
    let lcores: Vec<u32> = all.into_iter().take(k).collect();
    let ports = Port::all(eal);
    let [outside, inside, ..] = ports.as_slice() else {
        return Err(RunError::config(
            "the bench needs two ports, outside then inside: e.g. -- --vdev net_null0 --vdev net_null1",
        ));
    };
    let plan = Plan { family: args.family };
    let toml = plan.gateway_toml(
        &outside.name(),
        &inside.name(),
        std::path::Path::new("/dev/shm/unused"),
        args.burst,
        args.mbufs,
    );
    let cfg = Config::parse(&toml, std::path::Path::new("espd-bench.toml"))
        .map_err(|e| RunError::config(e.to_string()))?;
    let pool = Mempool::new(eal, "espd_bench_pool", args.mbufs, 256, Mempool::DEFAULT_DATA_ROOM, None)?;
    let built = espd::gw::app::build(eal, &cfg, &pool, k as u16)?;
    for (p, _, _, _) in &built.ports {
        p.start()?;
    }
    let rings = Arc::new(
        (0..k)
            .map(|w| Ring::create::<Multi, Multi>(eal, &format!("espd_bench_handoff_{w}"), 4096))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let rig = Rig {
        eal: eal.clone(),
        pool,
        ports: built.ports,
        ifaces: Arc::new(built.ifaces),
        routes: Arc::new(built.routes),
        neigh: Arc::new(built.neigh),
        rings,
        lcores,
        plan,
    };
    let mut records = Vec::new();
    let result = (|| {
        for &sas in &args.sas {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            run_sas(args, &rig, sas, &stop, &mut records)?;
        }
        Ok::<(), RunError>(())
    })();
    for (p, _, _, _) in &rig.ports {
        let _ = p.stop();
        let _ = p.close();
    }
    result.map(|()| records)
}

fn run_sas(
    args: &BenchArgs,
    rig: &Rig,
    sas: u32,
    stop: &Arc<AtomicBool>,
    records: &mut Vec<Record>,
) -> Result<(), RunError> {
    let path = std::path::PathBuf::from(format!("/dev/shm/espd-bench-{}-{sas}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let caps = sadb::Capacities {
        sas: 2 * sas + 64,
        policies: sas + 16,
        readers: 16,
        ..sadb::Capacities::default()
    };
    let region =
        Arc::new(sadb::Region::create(&path, &caps).map_err(|e| RunError::config(format!("sadb: {e}")))?);
    let outcome = (|| {
        let t = Instant::now();
        let mut inbound = Vec::with_capacity(sas as usize);
        {
            let mut w = region.writer().map_err(|e| RunError::config(format!("sadb: {e}")))?;
            let need_out = args.mode.iter().any(|m| matches!(m, BenchMode::Encap | BenchMode::Both));
            let need_in = args.mode.iter().any(|m| matches!(m, BenchMode::Decap | BenchMode::Both));
            for i in 0..sas {
                if need_out {
                    let rec = traffic::sa_record(
                        rig.plan,
                        i,
                        Direction::Out,
                        args.algo,
                        args.key_bits,
                        args.backend,
                    );
                    w.add_sa(&rec).map_err(|e| RunError::config(format!("sadb: outbound SA {i}: {e}")))?;
                }
                if need_in {
                    let rec = traffic::sa_record(
                        rig.plan,
                        i,
                        Direction::In,
                        args.algo,
                        args.key_bits,
                        args.backend,
                    );
                    inbound.push(
                        w.add_sa(&rec).map_err(|e| RunError::config(format!("sadb: inbound SA {i}: {e}")))?,
                    );
                }
            }
            if need_out {
                let policies: Vec<_> = (0..sas).map(|i| traffic::policy(rig.plan, i)).collect();
                w.add_policies(&policies).map_err(|e| RunError::config(format!("sadb: policies: {e}")))?;
            }
        }
        eprintln!("espd bench: {sas} tunnel(s) installed in {:.2} s", t.elapsed().as_secs_f64());
        for &mode in &args.mode {
            for &size in &args.size {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let r = run_one(args, rig, &region, &inbound, sas, mode, size, stop)?;
                match serde_json::to_string(&r) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("espd bench: cannot encode a record: {e}"),
                }
                records.push(r);
            }
        }
        Ok(())
    })();
    drop(region);
    let _ = std::fs::remove_file(&path);
    outcome
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    args: &BenchArgs,
    rig: &Rig,
    region: &Arc<sadb::Region>,
    inbound: &[u32],
    sas: u32,
    mode: BenchMode,
    size: PacketSize,
    stop: &Arc<AtomicBool>,
) -> Result<Record, RunError> {
    let (sizes, size_json) = sizes_of(size);
    let k = rig.lcores.len();
    let hz = dpdk::lcore::tsc_hz().max(1);
    let label = format!(
        "{mode:?} {} {} {} B x {sas} SA(s)",
        algorithm_name(args.algo, args.key_bits),
        match args.backend {
            BenchBackend::IpsecMb => "ipsec-mb",
            BenchBackend::Rust => "rust",
        },
        size_json
    )
    .to_lowercase();
    let v6 = args.family == Family::V6;
    let out_rec = traffic::sa_record(rig.plan, 0, Direction::Out, args.algo, args.key_bits, args.backend);
    let params = espd::gw::sa_ctx::engine_config(&out_rec).map_err(|e| RunError::config(e.0))?.crypto;
    let layout = params.layout();
    let ops: &[Operation] = match mode {
        BenchMode::Encap => &[Operation::Seal],
        BenchMode::Decap => &[Operation::Open],
        BenchMode::Both => &[Operation::Seal, Operation::Open],
        BenchMode::Io => &[],
    };
    let jobs_spec: Vec<(usize, Operation)> =
        ops.iter().flat_map(|&op| sizes.iter().map(move |&s| (esp_lengths(layout, s, v6).0, op))).collect();
    let avg_frame = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
    let wire_frame = match mode {
        BenchMode::Decap | BenchMode::Io => avg_frame,
        BenchMode::Encap => {
            sizes.iter().map(|&s| esp_lengths(layout, s, v6).1).sum::<usize>() as f64
                / sizes.len().max(1) as f64
        }
        BenchMode::Both => {
            (avg_frame
                + sizes.iter().map(|&s| esp_lengths(layout, s, v6).1).sum::<usize>() as f64
                    / sizes.len().max(1) as f64)
                / 2.0
        }
    };

    // Readers, owners and workers for this configuration.
    let mut readers = Vec::new();
    for &l in &rig.lcores {
        readers.push(region.register_reader(l).map_err(|e| RunError::config(format!("sadb: {e}")))?);
    }
    let mut owners = vec![None; region.capacities().readers as usize];
    for (w, r) in readers.iter().enumerate() {
        if let Some(o) = owners.get_mut(r.index() as usize) {
            *o = Some(w);
        }
    }
    let owners = Arc::new(owners);
    let (ifaces, routes, neigh) = (rig.ifaces.clone(), rig.routes.clone(), rig.neigh.clone());
    let clock = Arc::new(AtomicU64::new(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    ));
    let run_stop = Arc::new(AtomicBool::new(false));
    let outside_mac = ifaces.first().map(|i| i.mac.0).unwrap_or_default();
    let inside_mac = ifaces.get(1).map(|i| i.mac.0).unwrap_or_default();
    let mut jobs = Vec::new();
    let t = Instant::now();
    for (w, reader) in readers.into_iter().enumerate() {
        let q = w as u16;
        let wports: Vec<WorkerPort> = rig
            .ports
            .iter()
            .map(|(p, role, to_tap, mtu)| {
                Ok(WorkerPort {
                    rx: p.rx_queue(q)?,
                    tx: p.tx_queue(q)?,
                    inside: matches!(role, espd::config::Role::Inside | espd::config::Role::Both),
                    outside: matches!(role, espd::config::Role::Outside | espd::config::Role::Both),
                    to_tap: *to_tap,
                    mtu: *mtu,
                })
            })
            .collect::<Result<_, dpdk::Error>>()?;
        let mut worker = Worker::new(
            w,
            wports,
            ifaces.clone(),
            owners.clone(),
            None,
            rig.rings.clone(),
            reader,
            Backends::new(args.backend == BenchBackend::IpsecMb),
            neigh.clone(),
            routes.clone(),
            rig.pool.clone(),
            usize::from(args.burst),
            run_stop.clone(),
            clock.clone(),
        );
        if args.stages {
            worker.stage_clock.start();
        }
        // Worker w sends for tunnels w, w + k, ...: each inbound SA has one worker, so its
        // replay window one writer, and the worker re-arms only its own SAs.
        let mine: Vec<u32> = (w as u32..sas).step_by(k).collect();
        let plain = matches!(mode, BenchMode::Encap | BenchMode::Both | BenchMode::Io)
            .then(|| PlainSource::new(rig.plan, &sizes, sas, inside_mac));
        let (esp, inbound_slots) = if matches!(mode, BenchMode::Decap | BenchMode::Both) && !mine.is_empty() {
            let pool = EspPool::new(
                rig.plan,
                args.algo,
                args.key_bits,
                &mine,
                &sizes,
                outside_mac,
                args.pool_packets as usize,
                args.pool_mb << 20,
            )
            .map_err(|e| RunError::config(e.0))?;
            let slots = mine.iter().filter_map(|&i| inbound.get(i as usize).copied()).collect();
            (Some(pool), slots)
        } else {
            (None, Vec::new())
        };
        jobs.push(Job {
            worker,
            mode,
            plain,
            esp,
            inbound_slots,
            inside: 1,
            outside: 0,
            pool: rig.pool.clone(),
            burst: usize::from(args.burst),
            warmup: (args.warmup.max(0.0) * hz as f64) as u64,
            duration: (args.duration.max(0.01) * hz as f64) as u64,
            pace: args.rate_mpps.filter(|r| *r > 0.0).map(|r| hz as f64 / (r * 1e6)),
            headers_only: args.headers_only,
            calibration: (mode != BenchMode::Io).then(|| CryptoCalibration {
                params: params.clone(),
                ipsec_mb: args.backend == BenchBackend::IpsecMb,
                jobs: jobs_spec.clone(),
            }),
            live: Arc::new(Live::default()),
            stop: run_stop.clone(),
        });
    }
    if t.elapsed() > Duration::from_millis(200) {
        eprintln!("espd bench: {label}: traffic prepared in {:.2} s", t.elapsed().as_secs_f64());
    }

    let results: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new((0..k).map(|_| None).collect()));
    let lives: Vec<Arc<Live>> = jobs.iter().map(|j| j.live.clone()).collect();
    let slots: Vec<u32> = jobs.iter().map(|j| j.worker.reader.index()).collect();
    for (w, (job, &l)) in jobs.into_iter().zip(&rig.lcores).enumerate() {
        let res = results.clone();
        let hist = |_| RunError::config("cannot allocate a latency histogram");
        let (h1, h2) = (lcore::histogram().map_err(hist)?, lcore::histogram().map_err(hist)?);
        dpdk::lcore::launch(&rig.eal, l, move || {
            let o = job.run(h1, h2);
            if let Ok(mut r) = res.lock() {
                if let Some(x) = r.get_mut(w) {
                    *x = Some(o);
                }
            }
            0
        })?;
    }
    let wire_ratio = wire_frame / avg_frame.max(1.0);
    supervise(args, region, &label, wire_ratio, &lives, &slots, stop, &run_stop, results.clone());
    run_stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    for &l in &rig.lcores {
        if dpdk::lcore::wait(&rig.eal, l) != 0 {
            failed.push(l);
        }
    }
    let outcomes: Vec<Outcome> = match results.lock() {
        Ok(mut r) => r.iter_mut().filter_map(Option::take).collect(),
        Err(_) => Vec::new(),
    };
    if !failed.is_empty() || outcomes.len() != k {
        return Err(RunError::config(format!("{label}: worker lcore(s) {failed:?} failed")));
    }
    record(args, mode, sas, size_json, avg_frame, wire_frame, hz, &outcomes)
}

/// Prints the table every interval until every worker is done or a signal arrives.
#[allow(clippy::too_many_arguments)]
fn supervise(
    args: &BenchArgs,
    region: &sadb::Region,
    label: &str,
    wire_ratio: f64,
    lives: &[Arc<Live>],
    slots: &[u32],
    stop: &AtomicBool,
    run_stop: &AtomicBool,
    results: Arc<Mutex<Vec<Option<Outcome>>>>,
) {
    let start = Instant::now();
    let interval = (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let (mut last, mut last_sent, mut last_bytes) = (start, 0u64, 0u64);
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if stop.load(Ordering::Relaxed) {
            run_stop.store(true, Ordering::Relaxed);
        }
        let done = results.lock().map_or(true, |r| r.iter().all(Option::is_some));
        if done {
            return;
        }
        let Some(iv) = interval else { continue };
        let now = Instant::now();
        if now.duration_since(last) < iv {
            continue;
        }
        let dt = now.duration_since(last).as_secs_f64();
        let sent: u64 = lives.iter().map(|l| l.sent.load(Ordering::Relaxed)).sum();
        let bytes: u64 = lives.iter().map(|l| l.plain_bytes.load(Ordering::Relaxed)).sum();
        let phase =
            if lives.iter().all(|l| l.measuring.load(Ordering::Relaxed)) { "measuring" } else { "warm-up" };
        let mut drops = Vec::new();
        let mut totals = vec![0u64; sadb::READER_COUNTERS];
        for info in region.readers().iter().filter(|i| slots.contains(&i.slot)) {
            for (a, b) in totals.iter_mut().zip(&info.counters) {
                *a += b;
            }
        }
        for (i, &v) in totals.iter().enumerate().take(TRAFFIC_BASE) {
            if v > 0 {
                drops.push(format!("{}={v}", counters::name(i)));
            }
        }
        eprintln!(
            "  -- {label} at {:.1} s ({phase}) --\n  TX-Mpps {:>8.3}  plaintext-Gbps {:>7.2}  wire-Gbps {:>7.2}  TX-packets {:>12}  drops: {}",
            start.elapsed().as_secs_f64(),
            (sent - last_sent) as f64 / dt / 1e6,
            (bytes - last_bytes) as f64 * 8.0 / dt / 1e9,
            (bytes - last_bytes) as f64 * wire_ratio * 8.0 / dt / 1e9,
            sent,
            if drops.is_empty() { "none".to_string() } else { drops.join(" ") }
        );
        (last, last_sent, last_bytes) = (now, sent, bytes);
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    args: &BenchArgs,
    mode: BenchMode,
    sas: u32,
    size: serde_json::Value,
    avg_frame: f64,
    wire_frame: f64,
    hz: u64,
    outcomes: &[Outcome],
) -> Result<Record, RunError> {
    let hzf = hz as f64;
    let hist = |_| RunError::config("cannot allocate a latency histogram");
    let (mut per_packet, mut burst) = (lcore::histogram().map_err(hist)?, lcore::histogram().map_err(hist)?);
    let mut drops = BTreeMap::new();
    let (mut mpps, mut packets, mut gbps, mut secs) = (0.0, 0u64, 0.0, 0.0);
    let (mut cycles, mut io, mut stages, mut generated, mut crypto) = (0u64, 0u64, 0u64, 0u64, 0.0);
    let (mut passes, mut no_mbuf) = (0, 0);
    let (mut on_cpu, mut wall, mut sched_ok) = (0u64, 0.0, true);
    let mut st: Option<(Stages, u64)> = None;
    for o in outcomes {
        if let Some(c) = o.stage_cycles {
            let (s, n) = st.get_or_insert((Stages::default(), 0));
            s.fill += o.fill as f64;
            s.classify += o.classify as f64;
            s.lookup += c.lookup as f64;
            s.esp += c.esp as f64;
            s.crypto += c.crypto as f64;
            s.post += c.post as f64;
            s.tx += o.tx as f64;
            *n += o.generated;
        }
        let s = o.cycles as f64 / hzf;
        if s > 0.0 {
            mpps += o.sent as f64 / s / 1e6;
            gbps += o.plain_bytes as f64 * 8.0 / s / 1e9;
        }
        secs += s / outcomes.len() as f64;
        packets += o.sent;
        cycles += o.cycles;
        io += o.fill + o.classify + o.tx;
        stages += o.stages;
        generated += o.generated;
        crypto += o.crypto / outcomes.len() as f64;
        passes += o.passes;
        match o.on_cpu_ns {
            Some((c, _)) => on_cpu += c,
            None => sched_ok = false,
        }
        wall += s * 1e9;
        no_mbuf += o.no_mbuf;
        let _ = per_packet.add(&o.per_packet_ns);
        let _ = burst.add(&o.burst_ns);
        for (i, &v) in o.counters.iter().enumerate().take(TRAFFIC_BASE) {
            if v > 0 {
                *drops.entry(counters::name(i)).or_insert(0) += v;
            }
        }
    }
    let per = |c: u64, n: u64| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    let stage_split = st.map(|(s, n)| {
        let d = n.max(1) as f64;
        Stages {
            fill: s.fill / d,
            classify: s.classify / d,
            lookup: s.lookup / d,
            esp: s.esp / d,
            crypto: s.crypto / d,
            post: s.post / d,
            tx: s.tx / d,
        }
    });
    if let Some(s) = &stage_split {
        eprintln!(
            "  stages (cycles/packet): fill {:.0}  classify {:.0}  lookup {:.0}  esp {:.0}  crypto {:.0}  post {:.0}  tx {:.0}",
            s.fill, s.classify, s.lookup, s.esp, s.crypto, s.post, s.tx
        );
    }
    let gen = generated.max(1);
    let cpu_share = (sched_ok && wall > 0.0).then(|| (on_cpu as f64 / wall).min(1.0));
    // TSC intervals include the time another task had the core; scaled by the share the
    // worker had, they are cycles on the CPU (the calibrated crypto is a median: unaffected).
    let share = cpu_share.unwrap_or(1.0);
    let cost = Cost {
        io_classify: per(io, gen) * share,
        crypto,
        rest: if mode == BenchMode::Io { 0.0 } else { per(stages, gen) * share - crypto },
    };
    Ok(Record {
        mode,
        algorithm: algorithm_name(args.algo, args.key_bits),
        backend: args.backend,
        family: if args.family == Family::V6 { 6 } else { 4 },
        size,
        avg_frame,
        sas,
        burst: usize::from(args.burst),
        workers: outcomes.len(),
        duration_s: secs,
        packets,
        mpps,
        gbps,
        gbps_wire: mpps * 1e6 * wire_frame * 8.0 / 1e9,
        cycles_per_packet: per(cycles, packets) * share,
        cost,
        crypto_only_mpps: if crypto > 0.0 { hzf / crypto / 1e6 } else { 0.0 },
        latency_ns: Percentiles::of(&per_packet),
        packet_latency_ns: Percentiles::of(&burst),
        rate_mpps: args.rate_mpps,
        drops,
        passes,
        no_mbuf,
        stages: stage_split,
        cpu_share,
        mpps_on_cpu: (sched_ok && on_cpu > 0).then(|| mpps * wall / on_cpu as f64),
        tsc_hz: hz,
    })
}
