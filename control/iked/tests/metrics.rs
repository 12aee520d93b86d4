//! The metrics endpoint of a running iked, scraped by a real Prometheus
//! (Debian's `prometheus`, started here with a 1 s scrape interval): the
//! rate Prometheus computes for IKE datagrams must be the rate this test
//! sends them at, and the count exactly what it sent. Loopback only.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Datagrams sent, and how fast.
const SENT: u64 = 120;
const PER_SECOND: u64 = 20;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on 127.0.0.1:`port` with `accept`: (content type, body).
fn get(port: u16, path: &str, accept: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let kind = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: ").or_else(|| l.strip_prefix("Content-Type: ")))?;
    // hyper may chunk the body; this endpoint sends it whole with a length.
    Some((kind.to_owned(), body.to_owned()))
}

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of a PromQL instant query's single result.
fn query(port: u16, promql: &str) -> Option<f64> {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (_, body) = get(port, &format!("/api/v1/query?query={q}"), "application/json")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"].get(0)?["value"].get(1)?.as_str()?.parse().ok()
}

fn prometheus(dir: &Path, web: u16, target: u16) -> Option<Killed> {
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: iked\n    \
             static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .ok()?;
    let spawned = Command::new("prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(c) => Some(Killed(c)),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: prometheus: {e} (scripts/setup.sh installs it)");
            None
        }
        Err(e) => panic!("prometheus: {e} (scripts/setup.sh installs it)"),
    }
}

#[test]
fn prometheus_scrapes_the_rate_of_what_iked_receives() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = 20_000 + (std::process::id() % 8_000) as u16 * 4;
    let (ike, natt, metrics, web) = (base, base + 1, base + 2, base + 3);
    let conf = dir.path().join("iked.toml");
    std::fs::write(
        &conf,
        format!(
            "[daemon]\ncontrol_socket = \"{sock}\"\nsadb = \"{db}\"\nlisten = [\"127.0.0.1\"]\nport = {ike}\n\
             port_nat_t = {natt}\nmetrics = \"127.0.0.1:{metrics}\"\n",
            sock = dir.path().join("iked.sock").display(),
            db = dir.path().join("sadb").display(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let _iked = Killed(
        Command::new(env!("CARGO_BIN_EXE_iked"))
            .arg("--config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let (kind, text) = wait_until("the metrics endpoint", 20, || get(metrics, "/metrics", "*/*"));
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.contains("# TYPE iked_ike_datagrams_total counter\n") && !text.contains("# EOF"), "{text}");
    let (kind, text) =
        wait_until("OpenMetrics", 5, || get(metrics, "/metrics", "application/openmetrics-text"));
    assert!(kind.starts_with("application/openmetrics-text; version=1.0.0"), "{kind}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("iked_child_sas 0\n"), "{text}");

    let Some(_prom) = prometheus(dir.path(), web, metrics) else {
        return;
    };
    wait_until("Prometheus scraping iked", 60, || query(web, "up{job=\"iked\"}").filter(|v| *v == 1.0));

    // Junk to iked's IKE port at PER_SECOND: each one is counted as malformed.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    for i in 0..SENT {
        let due = start + Duration::from_millis(i * 1000 / PER_SECOND);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        udp.send_to(b"not an ISAKMP message", ("127.0.0.1", ike)).unwrap_or_else(|e| panic!("{e}"));
    }
    let series = "iked_ike_datagrams_total{job=\"iked\",result=\"dropped-malformed\"}";
    // The last datagram's rate window: 5 s that ended while they were sent.
    let rate = query(web, &format!("rate({series}[5s])")).unwrap_or(0.0);
    let total = wait_until("Prometheus seeing every datagram", 20, || {
        query(web, series).filter(|v| *v == SENT as f64)
    });
    assert_eq!(total, SENT as f64);
    let expected = PER_SECOND as f64;
    assert!(
        (rate - expected).abs() <= expected * 0.25,
        "Prometheus's rate {rate:.2}/s against the {expected}/s sent"
    );
}
