//! ike-load: an IKEv1 load generator. Our `ike::engine::Engine` as many
//! initiators (one engine per source address, distinct cookies, identities
//! and traffic selectors per tunnel) over real UDP sockets brings up N
//! tunnels (Main Mode + Quick Mode, PSK) against a responder and reports
//! handshakes per second, time to N tunnels, failures and retransmissions:
//! a human-readable summary, then one JSON line.
//!
//! `--self-responder` runs our engine as the responder in a thread (the
//! engine's own cost, and the integration test); `--serve` runs only that
//! responder, as its own process, for `benches/ike-load.sh`.
#![forbid(unsafe_code)]

mod cpu;
mod load;
mod plan;
mod proposal;
mod report;
mod responder;

use clap::Parser;
use load::{LoadOptions, Ports};
use plan::{IdKind, Plan};
use responder::{Listener, ResponderCounters};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "ike-load", version, about = "IKEv1 load generator (Main Mode + Quick Mode, PSK)")]
struct Args {
    /// Number of tunnels to bring up.
    #[arg(short = 'n', long, default_value_t = 100)]
    tunnels: usize,
    /// The responder's IKE address.
    #[arg(long, default_value = "198.18.0.1")]
    responder: IpAddr,
    /// The responder's IKE port.
    #[arg(long, default_value_t = 500)]
    responder_port: u16,
    /// The responder's NAT-T port.
    #[arg(long, default_value_t = 4500)]
    responder_port_nat_t: u16,
    /// Initiator source addresses: this many, counting up from
    /// --source-base (default: one per tunnel). They must be local.
    #[arg(long)]
    sources: Option<usize>,
    /// First source address.
    #[arg(long, default_value = "198.18.64.1")]
    source_base: IpAddr,
    /// Port of the initiators' IKE sockets (0: any free port; the engines
    /// still see 500, and the responder then sees a NAT).
    #[arg(long, default_value_t = 500)]
    source_port: u16,
    /// Port of the initiators' NAT-T sockets (0: any free port).
    #[arg(long, default_value_t = 4500)]
    source_port_nat_t: u16,
    /// Tunnel i proposes the host --ts-base + i as its local selector.
    #[arg(long, default_value = "198.19.0.1")]
    ts_base: IpAddr,
    /// A subnet holding every tunnel's host (a responder's remote_ts).
    #[arg(long, default_value = "198.19.0.0/17")]
    initiator_ts: String,
    /// The responder's protected subnet (every tunnel's remote selector).
    #[arg(long, default_value = "198.19.128.0/24")]
    responder_ts: String,
    /// IKE proposal (strongSwan syntax, one transform).
    #[arg(long, default_value = "aes128-sha256-modp2048")]
    proposal: String,
    /// ESP proposal with the PFS group (default: aes128gcm16 with the IKE
    /// proposal's group).
    #[arg(long)]
    esp: Option<String>,
    /// Pre-shared key.
    #[arg(long, default_value = "ike-load-secret")]
    psk: String,
    /// Phase-1 identities: fqdn (t<i>.load.example, distinct per tunnel)
    /// or the source address.
    #[arg(long, value_enum, default_value_t = IdKind::Fqdn)]
    id: IdKind,
    /// Do not offer NAT-T (RFC 3947).
    #[arg(long)]
    no_nat_t: bool,
    /// Most handshakes in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Most handshakes in flight per source address (strongSwan's
    /// block_threshold is 5 half-open IKE SAs per peer address).
    #[arg(long, default_value_t = 4)]
    per_source: usize,
    /// Seconds before tunnels not yet up count as failures.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// First retransmission interval in ms (doubles, 5 retries).
    #[arg(long, default_value_t = 500)]
    retransmit_ms: u64,
    /// After the last tunnel, keep answering (lost HASH(3), responder
    /// retransmissions) for this many ms.
    #[arg(long, default_value_t = 1000)]
    linger_ms: u64,
    /// PID of the responder process: its CPU time over the run is reported
    /// (utime + stime of /proc/PID/stat).
    #[arg(long)]
    responder_pid: Option<u32>,
    /// Print a progress line (and record a sample) every this many seconds.
    #[arg(long)]
    progress: Option<f64>,
    /// Print every event of the initiator engines to stderr.
    #[arg(long)]
    verbose: bool,
    /// Name of the responder in the report.
    #[arg(long, default_value = "responder")]
    label: String,
    /// RNG seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Run our engine as the responder in a thread of this process,
    /// listening on --responder (ports 0 = any free port).
    #[arg(long, conflicts_with_all = ["serve", "responder_pid"])]
    self_responder: bool,
    /// Only run our engine as the responder (on --responder, for the peers
    /// the same options describe) until killed or --serve-seconds.
    #[arg(long)]
    serve: bool,
    /// With --serve: stop after this many seconds.
    #[arg(long)]
    serve_seconds: Option<u64>,
}

fn plan(args: &Args) -> Result<Plan, String> {
    let ike = proposal::parse_ike(&args.proposal)?;
    let esp_text = match &args.esp {
        Some(e) => e.clone(),
        None => proposal::default_esp(&args.proposal)?,
    };
    let (esp, pfs) = proposal::parse_esp(&esp_text)?;
    let count = args.sources.unwrap_or(args.tunnels);
    if count > args.tunnels {
        return Err(format!("--sources {count} is more than --tunnels {}", args.tunnels));
    }
    let sources = (0..count)
        .map(|i| plan::add(args.source_base, i as u128).ok_or("--source-base + --sources overflows"))
        .collect::<Result<Vec<_>, _>>()?;
    let p = Plan {
        responder: args.responder,
        sources,
        tunnels: args.tunnels,
        ts_base: args.ts_base,
        initiator_ts: plan::parse_subnet(&args.initiator_ts)?,
        responder_ts: plan::parse_subnet(&args.responder_ts)?,
        id_kind: args.id,
        psk: args.psk.clone().into_bytes(),
        ike,
        esp,
        pfs,
        nat_traversal: !args.no_nat_t,
        retransmit_initial: Duration::from_millis(args.retransmit_ms.max(1)),
    };
    p.validate()?;
    Ok(p)
}

/// The soft limit on open files (`/proc/self/limits`), if readable.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Two sockets per source (and two for our responder) must fit.
fn check_open_files(sockets: usize) -> Result<(), String> {
    match open_files_limit() {
        Some(limit) if sockets + 32 > limit => Err(format!(
            "{sockets} sockets do not fit the open-files limit {limit}: use fewer --sources or raise ulimit -n"
        )),
        _ => Ok(()),
    }
}

fn seed(args: &Args) -> u64 {
    args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
    })
}

fn serve(args: &Args, plan: &Plan) -> Result<(), String> {
    let ports = Ports { ike: args.responder_port, nat_t: args.responder_port_nat_t };
    let listener = Listener::bind(plan, ports).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(secs) = args.serve_seconds {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
        });
    }
    let counters = ResponderCounters::default();
    eprintln!("ike-load: serving {} peers on {} (pid {})", plan.tunnels, plan.responder, std::process::id());
    responder::serve(plan, listener, seed(args), &stop, &counters)?;
    eprintln!(
        "ike-load: responder done: {} IKE SAs, {} child SA pairs, {} failures",
        counters.ike_sas.load(Ordering::Relaxed),
        counters.installs.load(Ordering::Relaxed),
        counters.failures.load(Ordering::Relaxed)
    );
    Ok(())
}

fn generate(args: &Args, plan: &Plan) -> Result<report::Report, String> {
    let seed = seed(args);
    let mut opts = LoadOptions {
        source_ports: Ports { ike: args.source_port, nat_t: args.source_port_nat_t },
        responder_ports: Ports { ike: args.responder_port, nat_t: args.responder_port_nat_t },
        concurrency: args.concurrency.max(1),
        per_source: args.per_source.max(1),
        timeout: Duration::from_secs(args.timeout),
        linger: Duration::from_millis(args.linger_ms),
        seed,
        responder_cpu: args.responder_pid.map(cpu::CpuSource::process),
        verbose: args.verbose,
        progress: args.progress.filter(|p| *p > 0.0).map(Duration::from_secs_f64),
    };
    if !args.self_responder {
        let outcome = load::run(plan, &opts, &|_| false).map_err(|e| e.to_string())?;
        return Ok(report::Report::new(args.label.clone(), &args.proposal, plan, outcome, None));
    }
    // Our responder in a thread; its CPU time is that thread's.
    plan.responder_config()?;
    let ports = Ports { ike: args.responder_port, nat_t: args.responder_port_nat_t };
    let listener = Listener::bind(plan, ports).map_err(|e| e.to_string())?;
    opts.responder_ports = listener.ports().map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let counters = ResponderCounters::default();
    std::thread::scope(|scope| {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop, counters) = (&stop, &counters);
        let thread = scope.spawn(move || {
            let _ = tid_tx.send(cpu::this_thread_id());
            responder::serve(plan, listener, seed, stop, counters)
        });
        opts.responder_cpu = tid_rx.recv().ok().flatten().map(cpu::CpuSource::own_thread);
        // Linger until the responder has installed as many pairs as we did.
        let settled = |up: usize| counters.installs.load(Ordering::Relaxed) >= up as u64;
        let outcome = load::run(plan, &opts, &settled);
        stop.store(true, Ordering::Relaxed);
        let served = thread.join().map_err(|_| "the responder thread panicked".to_string())?;
        served?;
        let outcome = outcome.map_err(|e| e.to_string())?;
        Ok(report::Report::new(args.label.clone(), &args.proposal, plan, outcome, Some(counters)))
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ike-load: {e}");
            return ExitCode::from(2);
        }
    };
    let sockets = if args.serve { 2 } else { 2 * plan.sources.len() + 2 * usize::from(args.self_responder) };
    if let Err(e) = check_open_files(sockets) {
        eprintln!("ike-load: {e}");
        return ExitCode::from(2);
    }
    if args.serve {
        return match serve(&args, &plan) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ike-load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match generate(&args, &plan) {
        Ok(report) => {
            print!("{}", report.summary());
            println!("{}", report.json());
            if report.failures == 0 && report.established == plan.tunnels {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ike-load: {e}");
            ExitCode::from(2)
        }
    }
}
