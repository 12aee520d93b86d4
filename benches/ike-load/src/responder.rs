//! Our engine as the responder, over two UDP sockets: in a thread of the
//! generator (`--self-responder`, for the test and as the engine's own
//! baseline) or as a process of its own (`--serve`, for the benchmark
//! script, measured like charon through `/proc/<pid>/stat`).
//!
//! The engine sees ports 500/4500 on both sides; each peer's real address
//! is remembered per engine-side address so that replies go back to the
//! socket the peer really uses.

use crate::load::{bind, fingerprint, Ports, SharedSpis};
use crate::plan::Plan;
use ike::engine::{Engine, Event};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand_chacha::rand_core::SeedableRng;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the responder did, readable while it runs.
#[derive(Debug, Default)]
pub struct ResponderCounters {
    /// `InstallSa` events: child SA pairs complete (after HASH(3)).
    pub installs: AtomicU64,
    /// Phase 1 completions.
    pub ike_sas: AtomicU64,
    /// `Failed` events.
    pub failures: AtomicU64,
    /// Byte-identical re-sends of our engine.
    pub retransmissions: AtomicU64,
    /// Datagrams received.
    pub datagrams_received: AtomicU64,
    /// Socket errors.
    pub socket_errors: AtomicU64,
}

/// The responder's two sockets, bound before it runs so that the caller
/// learns the real ports.
#[derive(Debug)]
pub struct Listener {
    sockets: [UdpSocket; 2],
}

impl Listener {
    /// Binds `plan.responder` on `ports` (0 = any free port).
    pub fn bind(plan: &Plan, ports: Ports) -> io::Result<Self> {
        Ok(Self {
            sockets: [
                bind(SocketAddr::new(plan.responder, ports.ike))?,
                bind(SocketAddr::new(plan.responder, ports.nat_t))?,
            ],
        })
    }

    /// The ports actually bound.
    pub fn ports(&self) -> io::Result<Ports> {
        let [ike, nat_t] = &self.sockets;
        Ok(Ports { ike: ike.local_addr()?.port(), nat_t: nat_t.local_addr()?.port() })
    }
}

/// Answers initiators until `stop` is set.
pub fn serve(
    plan: &Plan,
    listener: Listener,
    seed: u64,
    stop: &AtomicBool,
    counters: &ResponderCounters,
) -> Result<(), String> {
    let config = plan.responder_config()?;
    let spis = SharedSpis(Arc::new(AtomicU32::new(0x2000_0000)));
    let rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed);
    let mut engine = Engine::new(config, Box::new(rng), Box::new(spis));
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut sockets = listener.sockets;
    for (which, sock) in sockets.iter_mut().enumerate() {
        poll.registry().register(sock, Token(which), Interest::READABLE).map_err(|e| e.to_string())?;
    }
    // Engine-side peer address (port 500 or 4500) -> real address.
    let mut real: HashMap<SocketAddr, SocketAddr> = HashMap::new();
    let mut sent: HashSet<u64> = HashSet::new();
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = engine
            .poll_timeout()
            .map_or(Duration::from_millis(50), |t| t.saturating_duration_since(now))
            .min(Duration::from_millis(50));
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
        let now = Instant::now();
        for ev in events.iter() {
            let Token(which) = ev.token();
            let Some(sock) = sockets.get(which) else {
                continue;
            };
            let engine_port = if which == 1 { 4500 } else { 500 };
            let local = SocketAddr::new(plan.responder, engine_port);
            loop {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        counters.datagrams_received.fetch_add(1, Ordering::Relaxed);
                        let view = SocketAddr::new(from.ip(), engine_port);
                        real.insert(view, from);
                        engine.handle_datagram(now, local, view, buf.get(..n).unwrap_or(&[]));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        counters.socket_errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        while let Some(event) = engine.poll_event() {
            match event {
                Event::InstallSa { .. } => counters.installs.fetch_add(1, Ordering::Relaxed),
                Event::IkeSaEstablished { .. } => counters.ike_sas.fetch_add(1, Ordering::Relaxed),
                Event::Failed { .. } => counters.failures.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        while let Some(t) = engine.poll_transmit() {
            if t.contents.len() > 1 && !sent.insert(fingerprint(&t.contents)) {
                counters.retransmissions.fetch_add(1, Ordering::Relaxed);
            }
            let which = usize::from(t.source.port() == 4500);
            let to = real.get(&t.destination).copied().unwrap_or(t.destination);
            let ok = sockets.get(which).is_some_and(|s| s.send_to(&t.contents, to).is_ok());
            if !ok {
                counters.socket_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}
