//! Gateway mode: build everything from the configuration, launch one worker per worker
//! lcore, supervise (statistics, signals, limits), and tear down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::{lcore, Eal, Mempool, Multi, Port, PortConfig, Ring};
use serde::Serialize;

use crate::config::{parse_mac, Config, Prefix, Role};
use crate::counters;
use crate::error::RunError;
use crate::gw::sa_ctx::Backends;
use crate::gw::worker::{Worker, WorkerPort, WorkerTap};
use crate::net::addr::{IfAddr, Interface};
use crate::net::neigh::{NeighTimes, NeighborTable, DEFAULT_CAPACITY};
use crate::net::route::{NextHop, Route, RouteTable};
use crate::net::Mac;
use crate::stats::PortSnapshot;

/// Options the command line adds to the file.
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this long without a received packet.
    pub idle_exit: Option<Duration>,
    /// Seconds between tables (overrides the file when set).
    pub stats_interval: Option<f64>,
}

/// What espd reports at exit (and `--json` prints).
#[derive(Debug, Clone, Serialize)]
pub struct GwReport {
    /// Seconds the workers ran.
    pub elapsed_s: f64,
    /// Device counters per port.
    pub ports: Vec<PortSnapshot>,
    /// Named per-lcore counters summed over the workers (zeros left out).
    pub counters: std::collections::BTreeMap<String, u64>,
    /// SA contexts built by the workers.
    pub sa_contexts_built: u64,
}

/// The ports, addresses, routes and neighbours of a configuration, set up (ports
/// configured, not started).
#[derive(Debug)]
pub struct Built {
    /// Each port with its role, whether it feeds the TAP, and its MTU.
    pub ports: Vec<(Port, Role, bool, u16)>,
    /// The exception TAP.
    pub tap: Option<Port>,
    /// Addresses and MACs, in port order.
    pub ifaces: Vec<Interface>,
    /// Routes.
    pub routes: RouteTable,
    /// Neighbours.
    pub neigh: NeighborTable,
}

/// Configures the configuration's ports with `queues` queue pairs each and builds the
/// tables the workers share (`run`, and `espd bench` for its traffic source).
pub fn build(eal: &Eal, cfg: &Config, pool: &Mempool, queues: u16) -> Result<Built, RunError> {
    let mut ports = Vec::new();
    let mut ifaces = Vec::new();
    let exception_port = cfg.exception.as_ref().map(|x| x.port.as_str());
    for (i, p) in cfg.ports.iter().enumerate() {
        let port = Port::by_name(eal, &p.device).map_err(|_| {
            RunError::config(format!(
                "ports[{i}].device: no DPDK port named {:?} (declare it in eal, e.g. --vdev {}...); found {:?}",
                p.device,
                p.device,
                Port::all(eal).iter().map(|q| q.name()).collect::<Vec<_>>()
            ))
        })?;
        let pc = PortConfig {
            rx_queues: queues,
            tx_queues: queues,
            rx_desc: cfg.dataplane.rx_desc,
            tx_desc: cfg.dataplane.tx_desc,
            rss: cfg.dataplane.rss,
            promiscuous: true,
        };
        port.configure(&pc, pool)?;
        if let Some(text) = &p.mac {
            let mac = crate::config::parse_unicast_mac(text)
                .map_err(|e| RunError::config(format!("ports[{i}].mac: {e}")))?;
            port.set_mac(mac)
                .map_err(|e| RunError::config(format!("ports[{i}].mac: {} refused {text}: {e}", p.device)))?;
        }
        let mac = Mac(port.mac()?);
        let mut addrs = Vec::new();
        for a in &p.addresses {
            let pf = Prefix::parse(a).map_err(RunError::config)?;
            addrs.push(
                IfAddr::new(pf.addr, pf.len)
                    .map_err(|e| RunError::config(format!("ports[{i}].addresses: {e:?}")))?,
            );
        }
        ifaces.push(Interface::new(i as u16, mac, addrs));
        ports.push((port, p.role, exception_port == Some(p.name.as_str()), p.mtu));
    }
    let tap = match &cfg.exception {
        None => None,
        Some(x) => {
            let tap = Port::by_name(eal, &x.device).map_err(|_| {
                RunError::config(format!(
                    "exception.device: no DPDK port named {:?} (add --vdev {},iface=espgw0 to eal)",
                    x.device, x.device
                ))
            })?;
            let pc = PortConfig { rx_queues: 1, tx_queues: queues, rss: false, ..PortConfig::default() };
            tap.configure(&pc, pool)?;
            // The host's side of the TAP answers for the outside port: same MAC.
            let owner = cfg.ports.iter().position(|p| p.name == x.port).unwrap_or(0);
            if let Some((p, _, _, _)) = ports.get(owner) {
                if let Err(e) = tap.set_mac(p.mac()?) {
                    eprintln!("espd: exception.device: cannot give it the outside port's MAC ({e}); set it on the host side");
                }
            }
            Some(tap)
        }
    };
    let mut routes = RouteTable::connected(&ifaces);
    for (i, r) in cfg.routes.iter().enumerate() {
        let pf = Prefix::parse(&r.prefix).map_err(RunError::config)?;
        let port = match (&r.port, r.via) {
            (Some(name), _) => cfg.ports.iter().position(|p| &p.name == name),
            (None, Some(via)) => ifaces.iter().position(|f| f.on_link(via)),
            (None, None) => None,
        }
        .ok_or_else(|| RunError::config(format!("routes[{i}]: cannot tell which port it leaves by")))?
            as u16;
        let next_hop = match r.via {
            Some(v) => NextHop::Via(v, port),
            None => NextHop::OnLink(port),
        };
        let network = crate::net::addr::mask(pf.addr, pf.len);
        routes.push(Route { prefix: network, prefix_len: pf.len, next_hop });
    }
    let routes = RouteTable::new(&routes).map_err(|e| RunError::config(format!("routes: {e:?}")))?;
    let neigh = NeighborTable::with_times(DEFAULT_CAPACITY, NeighTimes::per_second(lcore::tsc_hz().max(1)));
    for (i, n) in cfg.neighbors.iter().enumerate() {
        let mac = Mac(parse_mac(&n.mac).map_err(RunError::config)?);
        let port = cfg.ports.iter().position(|p| p.name == n.port).unwrap_or(0) as u16;
        neigh
            .add_static(n.ip, mac, port, 0)
            .map_err(|e| RunError::config(format!("neighbors[{i}]: {e:?}")))?;
    }
    Ok(Built { ports, tap, ifaces, routes, neigh })
}

fn port_snapshot(p: &Port) -> PortSnapshot {
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
}

fn port_status(
    p: &Port,
    name: &str,
    role: &str,
    mac: Mac,
    mtu: u16,
    addresses: Vec<String>,
    interface: Option<String>,
) -> crate::port_status::PortStatus {
    let s = p.stats().unwrap_or_default();
    let link = p.link().ok();
    crate::port_status::PortStatus {
        id: p.id(),
        name: name.into(),
        device: p.name(),
        role: role.into(),
        mac: mac.to_string(),
        link_up: link.is_some_and(|l| l.up),
        speed_mbps: link.map_or(0, |l| l.speed_mbps),
        mtu,
        addresses,
        interface,
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

/// Sets up the started TAP's host side (`crate::host`) as `[exception]` says; returns the
/// kernel interface's name.
fn setup_host_side(tap: &Port, cfg: &Config) -> Result<String, RunError> {
    let device = tap.name();
    let ifindex = tap.info()?.if_index;
    if ifindex == 0 {
        return Err(RunError::config(format!(
            "exception.setup: {device} has no kernel interface to set up (only net_tap has one); set setup = false"
        )));
    }
    let name = crate::host::interface_name(ifindex).map_err(|e| {
        RunError::config(format!(
            "exception.setup: cannot find the interface of {device} (ifindex {ifindex}): {e}"
        ))
    })?;
    let addresses = cfg.exception_addresses();
    crate::host::configure(ifindex, &name, &addresses, &mut |line| eprintln!("espd: exception: {line}"))
        .map_err(|e| RunError::config(e.to_string()))?;
    Ok(name)
}

fn lcore_totals(readers: &[Arc<sadb::Region>], idx: &[u32]) -> Vec<u64> {
    let mut t = vec![0u64; sadb::READER_COUNTERS];
    if let Some(r) = readers.first() {
        for info in r.readers().iter().filter(|i| idx.contains(&i.slot)) {
            for (a, b) in t.iter_mut().zip(&info.counters) {
                *a += b;
            }
        }
    }
    t
}

fn table(ports: &[PortSnapshot], totals: &[u64], elapsed: f64) -> String {
    let mut s = format!("  -------- espd gateway at {elapsed:.1} s --------\n");
    s += "  port name              RX-packets   TX-packets   missed  errors\n";
    for p in ports {
        s += &format!(
            "  {:>4} {:<16} {:>12} {:>12} {:>8} {:>7}\n",
            p.id,
            p.name,
            p.ipackets,
            p.opackets,
            p.imissed,
            p.ierrors + p.oerrors + p.rx_nombuf
        );
    }
    let named: Vec<String> = totals
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0)
        .map(|(i, v)| format!("{}={v}", counters::name(i)))
        .collect();
    s += &format!("  {}\n", named.join(" "));
    s
}

/// Runs the gateway with an initialised EAL.
pub fn run(eal: &Eal, cfg: &Config, limits: &RunLimits, stop: Arc<AtomicBool>) -> Result<GwReport, RunError> {
    let lcores = lcore::workers(eal);
    if lcores.is_empty() {
        return Err(RunError::config(
            "no worker lcore: give the EAL at least two, e.g. -l 0,1 (lcore 0 supervises)",
        ));
    }
    let queues = u16::try_from(lcores.len()).map_err(|_| RunError::config("too many lcores"))?;
    let pool = Mempool::new(eal, "espd_pool", cfg.dataplane.mbufs, 256, Mempool::DEFAULT_DATA_ROOM, None)?;
    let built = build(eal, cfg, &pool, queues)?;
    let caps = sadb::Capacities {
        sas: cfg.sadb.sas,
        policies: cfg.sadb.policies,
        readers: cfg.sadb.readers,
        max_replay_window: cfg.sadb.max_replay_window,
        ..sadb::Capacities::default()
    };
    let region = Arc::new(
        sadb::Region::open_or_create(&cfg.sadb.path, &caps)
            .map_err(|e| RunError::config(format!("sadb: {e}")))?,
    );
    let _sadb_guard =
        crate::gw::sadb_guard::watch(region.clone()).map_err(|e| RunError::config(format!("sadb: {e}")))?;
    let mut readers = Vec::new();
    for &l in &lcores {
        readers.push(region.register_reader(l).map_err(|e| RunError::config(format!("sadb: {e}")))?);
    }
    let reader_slots: Vec<u32> = readers.iter().map(|r| r.index()).collect();
    let mut owners = vec![None; region.capacities().readers as usize];
    for (w, slot) in reader_slots.iter().enumerate() {
        if let Some(o) = owners.get_mut(*slot as usize) {
            *o = Some(w);
        }
    }
    let owners = Arc::new(owners);
    let rings = Arc::new(
        (0..lcores.len())
            .map(|w| Ring::create::<Multi, Multi>(eal, &format!("espd_handoff_{w}"), 4096))
            .collect::<Result<Vec<_>, _>>()?,
    );
    for (p, _, _, _) in &built.ports {
        p.start()?;
    }
    if let Some(t) = &built.tap {
        t.start()?;
    }
    let ports_path = crate::port_status::path_for(&cfg.sadb.path);
    let tap_iface = match (&built.tap, &cfg.exception) {
        (Some(t), Some(x)) if x.setup => Some(setup_host_side(t, cfg)?),
        _ => None,
    };
    for (i, ((p, _, _, _), iface)) in built.ports.iter().zip(built.ifaces.iter()).enumerate() {
        let link = p.link().map(|l| if l.up { "up" } else { "down" }).unwrap_or("unknown");
        eprintln!("espd: port {i} {:?} ({}): MAC {}, link {link}", cfg.ports[i].name, p.name(), iface.mac);
    }
    if let Some(t) = &built.tap {
        eprintln!(
            "espd: exception {} ({}): MAC {}",
            t.name(),
            tap_iface.as_deref().unwrap_or("host side left as it is"),
            t.mac().map(|m| Mac(m).to_string()).unwrap_or_default()
        );
    }
    let statuses = |ifaces: &[Interface]| -> Vec<crate::port_status::PortStatus> {
        let mut out: Vec<_> = built
            .ports
            .iter()
            .zip(ifaces)
            .zip(&cfg.ports)
            .map(|(((p, role, _, mtu), iface), pc)| {
                port_status(p, &pc.name, role.name(), iface.mac, *mtu, pc.addresses.clone(), None)
            })
            .collect();
        if let Some(t) = &built.tap {
            let addrs: Vec<String> = cfg
                .exception_addresses()
                .iter()
                .map(|a| format!("{}/{}", a.prefix.addr, a.prefix.len))
                .collect();
            let mac = Mac(t.mac().unwrap_or_default());
            out.push(port_status(t, "exception", "exception", mac, 0, addrs, tap_iface.clone()));
        }
        out
    };
    let ifaces = Arc::new(built.ifaces);
    let routes = Arc::new(built.routes);
    let neigh = Arc::new(built.neigh);
    let builds = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let unix_now =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(unix_now()));
    // Workers add their final counters here before they deregister from the region.
    let finals: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..sadb::READER_COUNTERS).map(|_| Default::default()).collect());
    for (w, (l, reader)) in lcores.iter().zip(readers).enumerate() {
        let q = w as u16;
        let wports: Vec<WorkerPort> = built
            .ports
            .iter()
            .map(|(p, role, to_tap, mtu)| {
                Ok(WorkerPort {
                    rx: p.rx_queue(q)?,
                    tx: p.tx_queue(q)?,
                    inside: matches!(role, Role::Inside | Role::Both),
                    outside: matches!(role, Role::Outside | Role::Both),
                    to_tap: *to_tap,
                    mtu: *mtu,
                })
            })
            .collect::<Result<_, dpdk::Error>>()?;
        let tap = match &built.tap {
            Some(t) => {
                Some(WorkerTap { rx: if w == 0 { Some(t.rx_queue(0)?) } else { None }, tx: t.tx_queue(q)? })
            }
            None => None,
        };
        let mut worker = Worker::new(
            w,
            wports,
            ifaces.clone(),
            owners.clone(),
            tap,
            rings.clone(),
            reader,
            Backends::new(cfg.dataplane.backend == "ipsec-mb"),
            neigh.clone(),
            routes.clone(),
            pool.clone(),
            usize::from(cfg.dataplane.burst),
            stop.clone(),
            clock.clone(),
        );
        worker.idle = crate::gw::idle::IdleMode::parse(&cfg.dataplane.idle).unwrap_or_default();
        let (b, f) = (builds.clone(), finals.clone());
        lcore::launch(eal, *l, move || {
            let rc = worker.run();
            b.fetch_add(worker.cache.builds, Ordering::Relaxed);
            for (t, c) in f.iter().zip(worker.reader.counters().iter()) {
                t.fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            rc
        })?;
    }

    let publish = |ifaces: &[Interface]| {
        let file = crate::port_status::PortsFile {
            pid: std::process::id(),
            updated_unix: unix_now(),
            ports: statuses(ifaces),
        };
        crate::port_status::write(&ports_path, &file)
    };
    // The workers run already: a failure here stops them before it is returned.
    let mut fatal = None;
    match publish(&ifaces) {
        Ok(()) => {
            eprintln!("espd: ready ({} port(s), ports in {})", built.ports.len(), ports_path.display());
            if let Err(e) = crate::notify::notify("READY=1") {
                eprintln!("espd: cannot tell systemd it is ready ($NOTIFY_SOCKET): {e}");
            }
        }
        Err(e) => {
            fatal = Some(RunError::config(format!(
                "sadb.path: cannot write the ports file {}: {e}",
                ports_path.display()
            )));
            stop.store(true, Ordering::Relaxed);
        }
    }
    let mut last_publish = Instant::now();
    let start = Instant::now();
    let all_ports: Vec<Port> =
        built.ports.iter().map(|(p, _, _, _)| p.clone()).chain(built.tap.clone()).collect();
    let interval = limits.stats_interval.unwrap_or(cfg.dataplane.stats_interval);
    let interval = (interval > 0.0).then(|| Duration::from_secs_f64(interval));
    let mut last_print = start;
    let (mut last_rx, mut last_change) = (0u64, start);
    let regions = [region.clone()];
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        clock.store(unix_now(), Ordering::Relaxed);
        let now = Instant::now();
        let rx: u64 = all_ports.iter().map(|p| p.stats().map_or(0, |s| s.ipackets)).sum();
        if rx != last_rx {
            (last_rx, last_change) = (rx, now);
        }
        if limits.idle_exit.is_some_and(|d| now.duration_since(last_change) >= d)
            || limits.duration.is_some_and(|d| now.duration_since(start) >= d)
        {
            break;
        }
        if now.duration_since(last_publish) >= Duration::from_secs(1) {
            if let Err(e) = publish(&ifaces) {
                eprintln!("espd: cannot update the ports file {}: {e}", ports_path.display());
            }
            last_publish = now;
        }
        if let Some(iv) = interval {
            if now.duration_since(last_print) >= iv {
                let snaps: Vec<PortSnapshot> = all_ports.iter().map(port_snapshot).collect();
                eprint!(
                    "{}",
                    table(&snaps, &lcore_totals(&regions, &reader_slots), start.elapsed().as_secs_f64())
                );
                last_print = now;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = crate::notify::notify("STOPPING=1");
    let mut failed = Vec::new();
    for l in &lcores {
        if lcore::wait(eal, *l) != 0 {
            failed.push(*l);
        }
    }
    let _ = std::fs::remove_file(&ports_path);
    let snaps: Vec<PortSnapshot> = all_ports.iter().map(port_snapshot).collect();
    let totals: Vec<u64> = finals.iter().map(|v| v.load(Ordering::Relaxed)).collect();
    for p in &all_ports {
        let _ = p.stop();
        let _ = p.close();
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    if !failed.is_empty() {
        return Err(RunError::config(format!("worker lcore(s) {failed:?} failed (panicked)")));
    }
    Ok(GwReport {
        elapsed_s: start.elapsed().as_secs_f64(),
        ports: snaps,
        counters: totals
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0)
            .map(|(i, &v)| (counters::name(i), v))
            .collect(),
        sa_contexts_built: builds.load(Ordering::Relaxed),
    })
}
