//! espd on DPDK's virtio PMD, as in a VM with virtio-net NICs, without a VM: its two ports
//! are `net_virtio_user` devices whose backend is a vhost-user socket served by a second DPDK
//! process, testpmd, with two `net_vhost` ports (two queue pairs each). testpmd forwards each
//! vhost port to a `net_pcap` port (io mode, paired ports, one pcap file per queue), so
//! scapy's frames enter espd through the virtio RX queues and espd's output leaves through
//! the virtio TX queues into pcaps that scapy checks, exactly as `gw_pcap` does.
//!
//! ```text
//! scapy ─ pcaps ─ net_pcap1 ═ testpmd ═ net_vhost1 ~ in.sock  ~ net_virtio_user1 (inside) ─┐
//!                                                                                        espd
//! scapy ─ pcaps ─ net_pcap0 ═ testpmd ═ net_vhost0 ~ out.sock ~ net_virtio_user0 (outside) ┘
//! ```
//!
//! - vhost is the server (testpmd creates the sockets), virtio-user the client: espd starts
//!   once the sockets exist and never blocks in its EAL initialisation waiting for a peer.
//! - Two queue pairs, two espd workers (lcores float over the allowed CPUs, so this also
//!   runs on two cores): worker k polls RX queue k of both ports and sends on TX queue k.
//!   vhost has no RSS; testpmd's pcap queue k feeds vhost queue k, so the split is ours.
//! - Both processes run with `--no-huge`: DPDK then backs its memory with a memfd mapped
//!   shared, which virtio-user hands to the vhost backend (no hugepages, no `--in-memory`,
//!   which `--no-huge` refuses anyway).
//! - testpmd is interactive on a pipe, not `--auto-start`: its forwarding must start only
//!   once espd's virtio queues hold RX buffers, or vhost drops the frames (and testpmd's
//!   default flush of its RX queues at `start` would discard the input: `--no-flush-rx`).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Queue pairs on every virtio/vhost port, and espd workers.
const QUEUES: usize = 2;
/// The virtio-user ports' MACs (`mac=` devarg; they would be random otherwise).
const OUT_MAC: &str = "02:76:69:72:74:00";
const IN_MAC: &str = "02:76:69:72:74:01";
/// testpmd's port ids, in `--vdev` order; `--port-topology=paired` pairs 0↔1 and 2↔3.
const VHOST_OUT: u16 = 0;
const PCAP_OUT: u16 = 1;
const VHOST_IN: u16 = 2;
const PCAP_IN: u16 = 3;
/// espd stops after this long without a received frame. Its clock starts when its ports
/// are up, before the test tells testpmd to start, so this also covers the test's reaction
/// on a loaded machine.
const IDLE_EXIT_MS: u64 = 3000;
/// Upper bounds, far above a normal run (about 6 s in all), for a loaded CI machine.
const STARTUP: Duration = Duration::from_secs(60);
const RUN: Duration = Duration::from_secs(120);
const SHUTDOWN: Duration = Duration::from_secs(30);

/// Appends everything a pipe yields to `into` (bytes, not lines: testpmd's prompt has none).
fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// A child whose output threads collect; killed and reaped if it is still running when
/// dropped (a failed assertion), so no DPDK process outlives the test.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({e}); scripts/setup.sh installs it"));
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Proc { name, stdin: child.stdin.take(), child, stdout, stderr, readers }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// Types a command (testpmd's prompt reads its stdin).
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()).and_then(|()| stdin.flush()) {
            panic!("cannot send {line:?} to {} ({e})\n{}", self.name, self.output());
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the exit, then for the output threads; panics after `timeout`.
    fn finish(&mut self, timeout: Duration) -> ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs after {timeout:?}\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The EAL leaves an empty runtime directory per file prefix: remove ours (only if empty).
struct RuntimeDirs(Vec<String>);

impl Drop for RuntimeDirs {
    fn drop(&mut self) {
        let bases = [std::env::var("XDG_RUNTIME_DIR").unwrap_or_default(), "/var/run".into(), "/tmp".into()];
        for prefix in &self.0 {
            for base in bases.iter().filter(|b| !b.is_empty()) {
                let _ = std::fs::remove_dir(Path::new(base).join("dpdk").join(prefix));
            }
        }
    }
}

/// Waits until `ready` holds; between polls, fails at once if a process died.
fn wait_for(what: &str, procs: &mut [&mut Proc], mut ready: impl FnMut(&[&mut Proc]) -> bool) {
    let deadline = Instant::now() + STARTUP;
    while !ready(procs) {
        for p in procs.iter_mut() {
            if let Some(s) = p.exited() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("{} exited ({s}) while waiting for {what}\n{}", p.name, p.output());
            }
        }
        if Instant::now() > deadline {
            let out: Vec<String> = procs.iter().map(|p| p.output()).collect();
            panic!("no {what} after {STARTUP:?}\n{}", out.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The CPUs this process may run on, as the kernel lists them (`0-1`, `0,2-3`): the EAL
/// threads of both processes float over them instead of being pinned one per core.
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "0".into())
}

/// `--lcores 0@(CPUS),1@(CPUS),...`: `n` lcores, each free to run on any allowed CPU.
fn floating_lcores(n: usize, cpus: &str) -> String {
    (0..n).map(|l| format!("{l}@({cpus})")).collect::<Vec<_>>().join(",")
}

/// One testpmd stream: RX port/queue and its packets, TX packets and drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stream {
    rx_port: u16,
    rx_queue: u16,
    rx: u64,
    tx: u64,
    dropped: u64,
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    line.split(key).nth(1)?.split_whitespace().next()?.parse().ok()
}

/// The per-stream statistics `stop` prints (streams with no packet are left out):
/// ```text
///   ------- Forward Stats for RX Port= 0/Queue= 1 -> TX Port= 1/Queue= 1 -------
///   RX-packets: 20             TX-packets: 20             TX-dropped: 0
/// ```
fn forward_streams(log: &str) -> Vec<Stream> {
    let mut lines = log.lines();
    let mut out = Vec::new();
    while let Some(l) = lines.next() {
        let Some(rest) = l.split("Forward Stats for RX Port=").nth(1) else { continue };
        let mut ids = rest.split(" -> ").next().unwrap_or("").split("/Queue=");
        let port = ids.next().and_then(|p| p.trim().parse().ok());
        let queue = ids.next().and_then(|q| q.trim().parse().ok());
        let counts = lines.next().unwrap_or("");
        if let (Some(rx_port), Some(rx_queue), Some(rx), Some(tx), Some(dropped)) = (
            port,
            queue,
            number_after(counts, "RX-packets:"),
            number_after(counts, "TX-packets:"),
            number_after(counts, "TX-dropped:"),
        ) {
            out.push(Stream { rx_port, rx_queue, rx, tx, dropped });
        }
    }
    out
}

#[test]
fn esp_both_ways_through_virtio_user_and_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let queues = QUEUES.to_string();
    let macs = ["--gw-out-mac", OUT_MAC, "--gw-in-mac", IN_MAC, "--queues", &queues];
    let made = common::scapy(d, "make", &macs);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let db = d.join("sadb");
    common::create_sadb(&db);

    let pid = std::process::id();
    let (tp_prefix, espd_prefix) = (format!("espd-virtio-tp-{pid}"), format!("espd-virtio-{pid}"));
    let _runtime_dirs = RuntimeDirs(vec![tp_prefix.clone(), espd_prefix.clone()]);
    let cpus = allowed_cpus();
    let sock = |side: &str| d.join(format!("{side}.sock")).display().to_string();
    // One pcap file per queue: testpmd forwards pcap queue k to vhost queue k and back.
    let pcap_vdev = |n: u16, side: &str| {
        let files = |key: &str, io: &str| {
            (0..QUEUES).map(|q| format!("{key}={}/{side}_{io}_q{q}.pcap", d.display())).collect::<Vec<_>>()
        };
        format!("net_pcap{n},{}", [files("rx_pcap", "in"), files("tx_pcap", "out")].concat().join(","))
    };

    // testpmd: vhost-user servers; interactive on a pipe, so the test says when to start.
    let mut testpmd = Proc::spawn(
        "dpdk-testpmd",
        Command::new("dpdk-testpmd")
            .args(["--lcores", &floating_lcores(2, &cpus)])
            .args(["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"])
            .args(["--file-prefix", &tp_prefix])
            .args(["--vdev", &format!("net_vhost0,iface={},queues={QUEUES}", sock("out"))])
            .args(["--vdev", &pcap_vdev(0, "outside")])
            .args(["--vdev", &format!("net_vhost1,iface={},queues={QUEUES}", sock("in"))])
            .args(["--vdev", &pcap_vdev(1, "inside")])
            .args(["--", "-i", "--port-topology=paired", "--nb-cores=1", "--no-flush-rx"])
            .args(["--rxq", &queues, "--txq", &queues, "--total-num-mbufs=8192"]),
    );
    wait_for("vhost-user sockets", &mut [&mut testpmd], |_| {
        Path::new(&sock("out")).exists() && Path::new(&sock("in")).exists()
    });

    // espd: virtio-user clients of those sockets, one worker per queue pair.
    let eal: Vec<String> = [
        "--lcores".into(),
        floating_lcores(QUEUES + 1, &cpus),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        "256".into(),
        "--no-shconf".into(),
        "--no-telemetry".into(),
        "--log-level".into(),
        "warning".into(),
        "--file-prefix".into(),
        espd_prefix.clone(),
        "--vdev".into(),
        format!("net_virtio_user0,path={},queues={QUEUES},mac={OUT_MAC}", sock("out")),
        "--vdev".into(),
        format!("net_virtio_user1,path={},queues={QUEUES},mac={IN_MAC}", sock("in")),
    ]
    .into();
    let cfg_path = d.join("espd.toml");
    // Statistics tables every 0.2 s: the first one says the ports are started.
    let cfg = common::gateway_config(&eal, "net_virtio_user0", "net_virtio_user1", &db, 0.2);
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut espd = Proc::spawn(
        "espd",
        Command::new(env!("CARGO_BIN_EXE_espd")).arg("--config").arg(&cfg_path).args([
            "--idle-exit-ms",
            &IDLE_EXIT_MS.to_string(),
            "--json",
        ]),
    );

    // Ready when every vring of both vhost ports is enabled (the virtio driver enables the
    // second queue pair from rte_eth_dev_start, after its RX rings are filled: testpmd
    // reports each as a queue state event) and espd printed its first table.
    wait_for("virtio queues enabled and espd running", &mut [&mut testpmd, &mut espd], |p| {
        let log = p[0].stdout();
        let enabled = |port: u16| log.matches(&format!("Port {port}: queue state event")).count();
        enabled(VHOST_OUT) >= 2 * QUEUES
            && enabled(VHOST_IN) >= 2 * QUEUES
            && p[1].stderr.lock().unwrap().contains("espd gateway at")
    });
    let started = Instant::now();
    testpmd.send("start");

    let deadline = Instant::now() + RUN;
    while espd.exited().is_none() {
        assert!(Instant::now() < deadline, "espd did not stop within {RUN:?}\n{}", espd.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    let espd_status = espd.finish(SHUTDOWN);
    let ran = started.elapsed();
    // `stop` prints the per-stream statistics; on a pipe testpmd's stdout is block-buffered,
    // so they are read once `quit` has made it exit (which also closes the pcap files).
    testpmd.send("stop");
    testpmd.send("quit");
    let testpmd_status = testpmd.finish(SHUTDOWN);
    let (espd_out, tp_log) = (espd.output(), testpmd.output());
    assert!(espd_status.success(), "espd failed ({espd_status})\n{espd_out}");
    assert!(testpmd_status.success(), "testpmd failed ({testpmd_status})\n{tp_log}");
    eprintln!("espd ran {ran:.1?} after testpmd's start (idle exit {IDLE_EXIT_MS} ms)");

    let report = common::parse_report(&espd.stdout(), &espd.stderr.lock().unwrap());
    let streams = forward_streams(&tp_log);
    let frames_in = common::PLAIN + common::ESP_GOOD + 3;
    let sum =
        |key: &str| report["ports"].as_array().unwrap().iter().map(|p| p[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        sum("ipackets"),
        frames_in,
        "every frame reaches espd's virtio RX queues: {report}\ntestpmd's streams: {streams:?}"
    );
    common::assert_counters(&report);
    assert!(
        report["counters"]["handed-off"].as_u64().unwrap_or(0) > 0,
        "ESP arrived on both RX queues, so the inbound SA's non-owner handed frames over: {report}"
    );

    // testpmd's side: nothing dropped towards or from espd; every frame espd sent came back
    // out of the vhost ports; both espd workers sent ESP, each on its own TX queue.
    let total = |ports: [u16; 2], f: fn(&Stream) -> u64| {
        streams.iter().filter(|s| ports.contains(&s.rx_port)).map(f).sum::<u64>()
    };
    let dropped: u64 = streams.iter().map(|s| s.dropped).sum();
    assert_eq!(dropped, 0, "testpmd dropped frames: {streams:?}\n{tp_log}");
    assert_eq!(total([PCAP_OUT, PCAP_IN], |s| s.tx), frames_in, "{streams:?}\n{tp_log}");
    assert_eq!(total([VHOST_OUT, VHOST_IN], |s| s.rx), sum("opackets"), "{streams:?}\n{report}");
    for q in 0..QUEUES as u16 {
        assert!(
            streams.iter().any(|s| s.rx_port == VHOST_OUT && s.rx_queue == q && s.rx > 0),
            "no ESP from espd's TX queue {q}: {streams:?}"
        );
    }

    common::scapy_check(d, &macs);
    common::assert_sadb(&db);
}
