//! testpmd's io forwarding, the baseline the gateway is measured against: setting the ports
//! up in pairs, running the worker lcores, and the main lcore's supervision loop
//! (statistics, signals, idle and duration limits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::{lcore, Burst, Eal, Mempool, Port, PortConfig, RxQueue, TxQueue};

use crate::cli::Args;
use crate::error::RunError;
use crate::stats::{PortSnapshot, Report, WorkerCounters};

/// Largest burst a worker handles (the `Burst` array size); `--burst` may ask for fewer.
pub const MAX_BURST: usize = 64;

/// Where each port's received frames go: `(rx port, tx port)`.
pub fn pair_ports(ports: &[Port]) -> Result<Vec<(Port, Port)>, RunError> {
    match ports {
        [] => Err(RunError::Config(
            "no ports: give DPDK a device, e.g. `-- --vdev net_null0 --vdev net_null1`".into(),
        )),
        [one] => Ok(vec![(one.clone(), one.clone())]),
        _ if ports.len() % 2 == 1 => Err(RunError::Config(format!(
            "--ports: {} ports cannot be paired; give an even number, or one for one-arm",
            ports.len()
        ))),
        _ => Ok(ports
            .chunks_exact(2)
            .flat_map(|p| [(p[0].clone(), p[1].clone()), (p[1].clone(), p[0].clone())])
            .collect()),
    }
}

/// The io-forwarding loop of one worker: its queue of every rx port, in turn, to the same
/// queue of its tx port. No allocation, lock or system call inside the loop.
fn io_worker(
    mut routes: Vec<(RxQueue, usize)>,
    mut txqs: Vec<TxQueue>,
    burst: usize,
    stop: Arc<AtomicBool>,
    ctr: Arc<WorkerCounters>,
) -> i32 {
    let mut pkts: Burst<MAX_BURST> = Burst::new();
    let (mut rx, mut tx, mut dropped) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        for (in_q, out) in &mut routes {
            // Receive at most `burst`: leave the rest of the array unused.
            let n = in_q.rx_burst_limited(&mut pkts, burst);
            if n == 0 {
                continue;
            }
            rx += n as u64;
            tx += txqs.get_mut(*out).map_or(0, |q| q.tx_burst(&mut pkts)) as u64;
            // What the driver did not take is dropped and counted (testpmd's io mode does
            // the same; retrying would stall the other ports).
            dropped += pkts.len() as u64;
            pkts.clear();
            WorkerCounters::add(&ctr.busy_polls, 1);
            ctr.rx.store(rx, Ordering::Relaxed);
            ctr.tx.store(tx, Ordering::Relaxed);
            ctr.tx_dropped.store(dropped, Ordering::Relaxed);
        }
    }
    0
}

fn snapshot(ports: &[Port], workers: &[(u32, Arc<WorkerCounters>)], start: Instant) -> Report {
    Report {
        elapsed_s: start.elapsed().as_secs_f64(),
        ports: ports
            .iter()
            .map(|p| {
                let s = p.stats().unwrap_or_default();
                PortSnapshot {
                    id: p.id(),
                    name: p.name(),
                    ipackets: s.ipackets,
                    opackets: s.opackets,
                    ibytes: s.ibytes,
                    obytes: s.obytes,
                    imissed: s.imissed,
                    ierrors: s.ierrors,
                    oerrors: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                }
            })
            .collect(),
        workers: workers.iter().map(|(l, c)| c.snapshot(*l)).collect(),
    }
}

/// Runs espd with an initialised EAL until a signal, the duration or the idle limit stops
/// it; returns the final report.
pub fn run(eal: &Eal, args: &Args, stop: Arc<AtomicBool>) -> Result<Report, RunError> {
    let lcores = lcore::workers(eal);
    if lcores.is_empty() {
        return Err(RunError::Config(
            "no worker lcore: give the EAL at least two, e.g. `-- -l 0,1` (lcore 0 supervises)".into(),
        ));
    }
    let ports: Vec<Port> = if args.ports.is_empty() {
        Port::all(eal)
    } else {
        args.ports
            .iter()
            .map(|&id| {
                Port::new(eal, id).map_err(|_| {
                    RunError::Config(format!(
                        "--ports: port {id} does not exist ({} found)",
                        Port::all(eal).len()
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let routes = pair_ports(&ports)?;
    let queues = u16::try_from(lcores.len()).map_err(|_| RunError::Config("too many lcores".into()))?;

    let pool = Mempool::new(eal, "espd_pool", args.mbufs, 256, Mempool::DEFAULT_DATA_ROOM, None)?;
    let cfg = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: args.rxd,
        tx_desc: args.txd,
        ..PortConfig::default()
    };
    for p in &ports {
        p.configure(&cfg, &pool)?;
        p.start()?;
    }

    let burst = usize::from(args.burst).min(MAX_BURST);
    let mut workers = Vec::new();
    for (q, &l) in lcores.iter().enumerate() {
        let ctr = Arc::new(WorkerCounters::default());
        // This worker's queue `q` of every port: each rx queue, and where its frames go
        // (an index into the tx queues, which follow the order of `ports`).
        let q = q as u16;
        let txqs = ports.iter().map(|p| p.tx_queue(q)).collect::<Result<Vec<_>, _>>()?;
        let r = routes
            .iter()
            .map(|(i, o)| Ok((i.rx_queue(q)?, ports.iter().position(|p| p == o).unwrap_or(0))))
            .collect::<Result<Vec<_>, dpdk::Error>>()?;
        let (s, c) = (stop.clone(), ctr.clone());
        lcore::launch(eal, l, move || io_worker(r, txqs, burst, s, c))?;
        workers.push((l, ctr));
    }

    let start = Instant::now();
    let interval = (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let mut last_print = start;
    let mut prev: Option<Report> = None;
    let (mut last_rx, mut last_rx_change) = (0u64, start);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        let now = Instant::now();
        let rx: u64 = workers.iter().map(|(_, c)| c.rx.load(Ordering::Relaxed)).sum();
        if rx != last_rx {
            (last_rx, last_rx_change) = (rx, now);
        }
        if let Some(ms) = args.idle_exit_ms {
            if now.duration_since(last_rx_change) >= Duration::from_millis(ms) {
                break;
            }
        }
        if args.duration.is_some_and(|d| now.duration_since(start).as_secs_f64() >= d) {
            break;
        }
        if let Some(iv) = interval {
            if now.duration_since(last_print) >= iv {
                let r = snapshot(&ports, &workers, start);
                eprint!("{}", r.table(prev.as_ref()));
                prev = Some(r);
                last_print = now;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    for (l, _) in &workers {
        if lcore::wait(eal, *l) != 0 {
            failed.push(*l);
        }
    }
    let report = snapshot(&ports, &workers, start);
    for p in &ports {
        // Stopping flushes what drivers buffer (net_pcap's dump file, for one).
        let _ = p.stop();
        let _ = p.close();
    }
    if !failed.is_empty() {
        return Err(RunError::Config(format!("worker lcore(s) {failed:?} failed (panicked)")));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_rules() {
        // Port values can only come from the EAL; pairing is tested on its errors and
        // through the integration test that forwards real frames.
        assert!(matches!(pair_ports(&[]), Err(RunError::Config(m)) if m.contains("no ports")));
    }
}
