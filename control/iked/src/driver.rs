//! The engine loop (strongSwan's `net` subsystem plus the scheduler): UDP
//! sockets on the IKE and NAT-T ports of every listen address, a sleep until
//! the manager's next deadline ([`Manager::poll_timeout`], exact: no beat),
//! a short interval that reads the dataplane's event ring, and the
//! [`EngineControl`] the control socket calls into.
//!
//! One task owns the sockets' receive side and the timer; the
//! [`Manager`] sits behind a mutex shared with control requests, which are
//! short. After anything that may queue datagrams the task is woken and
//! flushes them (events were handled first, inside the manager).

use crate::config::{Child, Config, Connection};
use crate::ctl::protocol::{CtlError, DataplaneStats, EventRecord, IkeSaInfo, LoadSummary, PolicyInfo};
use crate::daemon::{EngineControl, EngineCounts};
use crate::manager::Manager;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, Notify};

/// How often the dataplane's event ring is read: a soft volume
/// limit's event starts a rekey that must finish before the hard limit (1 MB
/// of margin is 100 ms at 10 MB/s). Reading an empty event ring costs one
/// lock of the SA database.
pub const DATAPLANE_POLL: Duration = Duration::from_millis(10);
/// SA events buffered per `ikectl monitor` client before it is told it
/// lagged.
const MONITOR_BACKLOG: usize = 1024;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;

/// The handle the rest of the daemon holds.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    manager: Arc<Mutex<Manager>>,
    wake: Arc<Notify>,
    /// The manager's events, stamped, to every `ikectl monitor`.
    events: broadcast::Sender<EventRecord>,
}

impl EngineHandle {
    fn lock(&self) -> MutexGuard<'_, Manager> {
        self.manager.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EngineControl for EngineHandle {
    fn list_sas(&self) -> Vec<IkeSaInfo> {
        self.lock().list_sas(Instant::now(), SystemTime::now())
    }

    fn initiate(&self, conn: &Connection, child: Option<&Child>) -> Result<String, CtlError> {
        let r = self.lock().initiate(Instant::now(), &conn.name, child.map(|c| c.name.as_str()));
        self.wake.notify_one();
        r
    }

    fn terminate(&self, conn: &str, child: Option<&str>) -> Result<String, CtlError> {
        let r = self.lock().terminate(Instant::now(), conn, child);
        self.wake.notify_one();
        r
    }

    fn rekey(&self, conn: &str, child: Option<&str>) -> Result<String, CtlError> {
        let r = self.lock().rekey_now(Instant::now(), conn, child);
        self.wake.notify_one();
        r
    }

    fn list_pols(&self) -> Vec<PolicyInfo> {
        self.lock().list_pols()
    }

    fn reconfigure(&self, config: &Arc<Config>, summary: &LoadSummary) {
        self.lock().reconfigure(Instant::now(), Arc::clone(config), summary);
        self.wake.notify_one();
    }

    fn counts(&self) -> EngineCounts {
        self.lock().counts()
    }

    fn dataplane_stats(&self) -> Option<DataplaneStats> {
        Some(self.lock().dataplane_stats())
    }

    fn shutdown(&self, delete_sas: bool) {
        self.lock().shutdown(Instant::now(), delete_sas);
        self.wake.notify_one();
    }
    fn follow_events(&self) -> Result<broadcast::Receiver<EventRecord>, CtlError> {
        Ok(self.events.subscribe())
    }
    fn metrics(&self, per_sa: bool) -> crate::metrics::Snapshot {
        let m = self.lock();
        crate::metrics::Snapshot {
            stats: Default::default(),
            sas: if per_sa { m.list_sas(Instant::now(), SystemTime::now()) } else { Vec::new() },
            events: m.event_counts().clone(),
            lcores: m.lcore_counters(),
        }
    }
}

/// The bound sockets, by local address and port.
#[derive(Debug, Default)]
struct Sockets {
    by_addr: HashMap<SocketAddr, Arc<UdpSocket>>,
}

impl Sockets {
    /// The socket to send from: exact match, else the same port and family.
    fn pick(&self, source: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.by_addr.get(&source).or_else(|| {
            self.by_addr
                .iter()
                .find(|(a, _)| a.port() == source.port() && a.is_ipv4() == source.is_ipv4())
                .map(|(_, s)| s)
        })
    }
}

/// One UDP socket. IPv6 sockets are IPv6-only, so the default `0.0.0.0` and
/// `::` can both be bound on one port.
fn bind_one(sa: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(sa), Type::DGRAM, Some(Protocol::UDP))?;
    if sa.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&sa.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Binds the IKE and NAT-T sockets of every listen address. A port held
/// by another process (another iked, charon) is a startup error.
async fn bind(config: &Config) -> Result<Sockets, String> {
    let mut s = Sockets::default();
    for addr in &config.daemon.listen {
        for port in [config.daemon.port, config.daemon.port_nat_t] {
            let sa = SocketAddr::new(*addr, port);
            let sock = bind_one(sa).map_err(|e| {
                format!("cannot bind UDP {sa}: {e} (is another IKE daemon running, or the address missing?)")
            })?;
            s.by_addr.insert(sa, Arc::new(sock));
        }
    }
    Ok(s)
}

/// Starts the engine loop: binds the sockets, initiates `start` children,
/// and returns the handle plus the task (which ends when `stop` fires).
pub async fn start(
    manager: Manager,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), String> {
    let sockets = Arc::new(bind(manager.config()).await?);
    let handle = EngineHandle {
        manager: Arc::new(Mutex::new(manager)),
        wake: Arc::new(Notify::new()),
        events: broadcast::channel(MONITOR_BACKLOG).0,
    };
    let (tx, rx) = mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>(4096);
    for (local, sock) in &sockets.by_addr {
        let (sock, tx, local) = (Arc::clone(sock), tx.clone(), *local);
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let data = buf.get(..n).unwrap_or(&[]).to_vec();
                        if tx.send((local, from, data)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(target: "net", "receive on {local}: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    {
        let mut m = handle.lock();
        m.set_wall_clock(Instant::now(), SystemTime::now());
        m.start(Instant::now());
    }
    let task = tokio::spawn(run(handle.clone(), sockets, rx, stop));
    Ok((handle, task))
}

async fn run(
    h: EngineHandle,
    sockets: Arc<Sockets>,
    mut rx: mpsc::Receiver<(SocketAddr, SocketAddr, Vec<u8>)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut dataplane = tokio::time::interval(DATAPLANE_POLL);
    dataplane.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = h.lock().poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = rx.recv() => {
                let Some((local, from, data)) = got else { return };
                let mut m = h.lock();
                let now = Instant::now();
                // Certificates are checked against the date: follow the wall
                // clock (it may have been stepped since the last datagram).
                m.set_wall_clock(now, SystemTime::now());
                tracing::trace!(target: "net", "received {} bytes from {from} on {local}", data.len());
                m.handle_datagram(now, local, from, &data);
                // Drain what else is queued before sending, to batch work.
                while let Ok((l, f, d)) = rx.try_recv() {
                    m.handle_datagram(now, l, f, &d);
                }
            }
            _ = sleep => h.lock().tick(Instant::now()),
            _ = dataplane.tick() => h.lock().poll_dataplane(Instant::now()),
            _ = h.wake.notified() => {}
            _ = stop.changed() => {
                flush(&h, &sockets).await;
                return;
            }
        }
        flush(&h, &sockets).await;
    }
}

/// Commits queued policies, hands the manager's events to the monitors,
/// then sends every queued datagram.
async fn flush(h: &EngineHandle, sockets: &Sockets) {
    let out: Vec<_> = {
        let mut m = h.lock();
        m.commit();
        let time_ms = crate::ctl::protocol::time_ms(SystemTime::now());
        while let Some(event) = m.poll_monitor() {
            // No monitor following: the event goes nowhere.
            let _ = h.events.send(EventRecord { time_ms, event });
        }
        std::iter::from_fn(|| m.poll_transmit()).collect()
    };
    for t in out {
        match sockets.pick(t.source) {
            Some(sock) => {
                if let Err(e) = sock.send_to(&t.contents, t.destination).await {
                    tracing::warn!(target: "net", "send to {}: {e}", t.destination);
                }
            }
            None => tracing::warn!(target: "net", "no socket for {} (not in daemon.listen)", t.source),
        }
    }
}
