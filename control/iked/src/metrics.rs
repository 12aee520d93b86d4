//! The OpenMetrics endpoint (`[daemon] metrics = "127.0.0.1:9469"`): on each
//! scrape, a snapshot of the daemon's state is encoded by `prometheus-client`
//! and served over HTTP/1.1 by `hyper` on the daemon's tokio runtime, in
//! OpenMetrics to a client that asks for it (Prometheus does) and in
//! Prometheus's text format otherwise.
//!
//! What is exported:
//! - `iked_ike_sas{state}`, `iked_child_sas`: SAs now;
//! - `iked_events_total{event}`: the lifecycle events of `ikectl monitor`
//!   (handshakes are `ike-up`, rekeys `child-rekeyed` and `ike-rekeyed`,
//!   DPD `dpd-probe` and `dpd-dead`, ...), `iked_ike_down_total{reason}`,
//!   `iked_auth_failures_total{reason}`;
//! - `iked_ike_datagrams_total{result}`: what became of received IKE
//!   datagrams;
//! - `espd_*_total{lcore}` for every traffic counter the dataplane declares
//!   (`sadb::counters`: the same names and help texts as `espctl stats`) and
//!   `espd_drops_total{lcore, reason}` for its drop reasons, per worker;
//! - per SA, unless `metrics_per_sa = false`: `iked_sa_packets_total`,
//!   `iked_sa_bytes_total` with `connection`, `child`, `direction`, `spi`.
//!   That is 4 series per child SA pair (about 400,000 for 100,000 tunnels,
//!   more across a rekey's overlap), which is why it can be turned off.
//!
//! The snapshot is taken under the manager's lock for as long as it takes
//! to copy counters; the dataplane's workers are not disturbed (they write
//! their counters, the snapshot reads them).

use crate::ctl::protocol::{IkeSaInfo, Stats};
use crate::manager::EventCounts;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// `Content-Type` of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of Prometheus's own text format, for clients that do not
/// ask for OpenMetrics (curl, `promtool check metrics`).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The same metrics in Prometheus's text format (0.0.4): the exposition a
/// client gets unless it asks for OpenMetrics. The two differ, for what is
/// exported here, in a counter family's name (OpenMetrics names the family
/// `x` and its samples `x_total`; the text format names both `x_total`) and
/// in the closing `# EOF`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines().filter(|l| *l != "# EOF") {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Counters of one dataplane worker (a reader slot of the SA database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LcoreCounters {
    /// Its lcore.
    pub lcore: u32,
    /// Its counters, by index (named by `sadb::counters`).
    pub counters: Vec<u64>,
}

/// What one scrape shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// What `ikectl stats` shows.
    pub stats: Stats,
    /// What `ikectl list-sas` shows (per-SA series).
    pub sas: Vec<IkeSaInfo>,
    /// Lifecycle events since the start (`ikectl monitor` names).
    pub events: EventCounts,
    /// The dataplane's workers (empty when the SA database is not attached).
    pub lcores: Vec<LcoreCounters>,
}

/// Where a scrape gets its snapshot.
pub trait Source: Send + Sync + 'static {
    /// The state now; `per_sa`: with the SA list.
    fn snapshot(&self, per_sa: bool) -> Snapshot;
}

type Labels = Vec<(String, String)>;

fn counter_family(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

/// A counter family of one label, its values from `values`.
fn counter_map(reg: &mut Registry, name: &str, help: &str, label: &str, values: &BTreeMap<String, u64>) {
    let family = counter_family(reg, name, help);
    for (v, n) in values {
        family.get_or_create(&labels(&[(label, v)])).inc_by(*n);
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The OpenMetrics text of `s` (with per-SA series when `s.sas` holds them).
pub fn render(s: &Snapshot) -> String {
    let mut reg = Registry::default();

    let ike = Family::<Labels, Gauge>::default();
    reg.register("iked_ike_sas", "IKE SAs, by state (list-sas states)", ike.clone());
    let mut states: BTreeMap<String, u64> =
        ["CONNECTING", "ESTABLISHED"].iter().map(|k| ((*k).to_owned(), 0)).collect();
    for sa in s.sas.iter().filter(|sa| sa.uniqueid != 0) {
        *states.entry(sa.state.clone()).or_default() += 1;
    }
    if s.sas.is_empty() {
        // Without the SA list (per-SA series off), the engine's counts.
        let half = s.stats.ike_sas_half_open;
        states.insert("CONNECTING".into(), half);
        states.insert("ESTABLISHED".into(), s.stats.ike_sas.saturating_sub(half));
    }
    for (state, n) in &states {
        ike.get_or_create(&labels(&[("state", &state.to_lowercase())])).set(gauge_value(*n));
    }
    let child = Gauge::<i64>::default();
    child.set(gauge_value(s.stats.child_sas));
    reg.register("iked_child_sas", "Installed child SA pairs", child);

    let e = &s.events;
    counter_map(
        &mut reg,
        "iked_events",
        "SA lifecycle events (ikectl monitor's), by kind",
        "event",
        &e.events,
    );
    counter_map(&mut reg, "iked_ike_down", "IKE SAs gone, by reason", "reason", &e.ike_down);
    let auth = "Peers that failed to authenticate, by reason";
    counter_map(&mut reg, "iked_auth_failures", auth, "reason", &e.auth_failures);
    let dgrams = "Received IKE datagrams, by what became of them";
    counter_map(&mut reg, "iked_ike_datagrams", dgrams, "result", &s.stats.ike_datagrams);

    render_dataplane(&mut reg, &s.lcores);
    render_per_sa(&mut reg, &s.sas);

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// The workers' counters, named and explained by their one declaration.
fn render_dataplane(reg: &mut Registry, lcores: &[LcoreCounters]) {
    use sadb::counters::{Traffic, TRAFFIC_BASE};
    let drops = counter_family(
        reg,
        "espd_drops",
        "Packets the dataplane dropped, by worker and reason (espctl stats)",
    );
    let traffic: Vec<(Traffic, Family<Labels, Counter>)> = Traffic::ALL
        .iter()
        .map(|t| (*t, counter_family(reg, &format!("espd_{}", t.name().replace('-', "_")), t.help())))
        .collect();
    for l in lcores {
        let lcore = l.lcore.to_string();
        for (i, &v) in l.counters.iter().enumerate().take(TRAFFIC_BASE) {
            let name = sadb::counters::name(i);
            if v == 0 || name.starts_with("counter-") {
                continue;
            }
            let reason = name.strip_prefix("drop-").unwrap_or(&name).to_owned();
            drops.get_or_create(&labels(&[("lcore", &lcore), ("reason", &reason)])).inc_by(v);
        }
        for (t, family) in &traffic {
            let v = l.counters.get(sadb::counters::traffic(*t)).copied().unwrap_or(0);
            family.get_or_create(&labels(&[("lcore", &lcore)])).inc_by(v);
        }
    }
}

/// Packets and bytes of every child SA, both directions.
fn render_per_sa(reg: &mut Registry, sas: &[IkeSaInfo]) {
    if sas.is_empty() {
        return;
    }
    let packets = counter_family(reg, "iked_sa_packets", "ESP packets of a child SA (dataplane counter)");
    let bytes = counter_family(reg, "iked_sa_bytes", "Bytes of a child SA (dataplane counter)");
    for sa in sas {
        for c in &sa.child_sas {
            for (dir, spi, p, b) in
                [("in", &c.spi_in, c.packets_in, c.bytes_in), ("out", &c.spi_out, c.packets_out, c.bytes_out)]
            {
                let l =
                    labels(&[("connection", &sa.name), ("child", &c.name), ("direction", dir), ("spi", spi)]);
                packets.get_or_create(&l).inc_by(p);
                bytes.get_or_create(&l).inc_by(b);
            }
        }
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown` fires; anything else is
/// 404. Bound before it returns, so a bad address is an error at start.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<dyn Source>,
    per_sa: bool,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Request, Response, StatusCode};

    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(target: "dmn", "metrics on http://{}/metrics", listener.local_addr()?);
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(target: "dmn", "metrics: accept: {e}");
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let source = Arc::clone(&source);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let source = Arc::clone(&source);
                    async move {
                        let response = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                            let body = render(&source.snapshot(per_sa));
                            let openmetrics = req
                                .headers()
                                .get(hyper::header::ACCEPT)
                                .and_then(|a| a.to_str().ok())
                                .is_some_and(|a| a.contains("application/openmetrics-text"));
                            let (body, kind) = if openmetrics {
                                (body, CONTENT_TYPE)
                            } else {
                                (to_prometheus_text(&body), CONTENT_TYPE_TEXT)
                            };
                            Response::builder()
                                .header(hyper::header::CONTENT_TYPE, kind)
                                .body(Full::new(Bytes::from(body)))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(b"")))
                        };
                        response
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                {
                    tracing::debug!(target: "dmn", "metrics connection: {e}");
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::protocol::ChildSaInfo;

    fn snapshot() -> Snapshot {
        let child = ChildSaInfo {
            name: "net".into(),
            uniqueid: 2,
            spi_in: "c1a2b3c4".into(),
            spi_out: "70000002".into(),
            packets_in: 5,
            bytes_in: 640,
            packets_out: 7,
            bytes_out: 896,
            ..Default::default()
        };
        let sa = IkeSaInfo {
            name: "gw".into(),
            uniqueid: 1,
            state: "ESTABLISHED".into(),
            child_sas: vec![child],
            ..Default::default()
        };
        let mut counters = vec![0u64; sadb::READER_COUNTERS];
        counters[sadb::counters::traffic(sadb::counters::Traffic::RxPackets)] = 1000;
        counters[1] = 3; // drop-replay
        let mut stats = Stats { child_sas: 1, ike_sas: 1, ..Default::default() };
        stats.ike_datagrams.insert("dropped-malformed".into(), 4);
        Snapshot {
            stats,
            sas: vec![sa],
            events: EventCounts {
                events: [("ike-up".to_owned(), 1), ("child-rekeyed".to_owned(), 3)].into(),
                ike_down: [("dead".to_owned(), 1)].into(),
                auth_failures: [("bad-signature".to_owned(), 2)].into(),
            },
            lcores: vec![LcoreCounters { lcore: 1, counters }],
        }
    }

    /// The series a dashboard reads, with their labels and values, in
    /// OpenMetrics text that ends with `# EOF`.
    #[test]
    fn a_snapshot_renders_as_openmetrics() {
        let text = render(&snapshot());
        for line in [
            "iked_ike_sas{state=\"established\"} 1",
            "iked_ike_sas{state=\"connecting\"} 0",
            "iked_child_sas 1",
            "iked_events_total{event=\"child-rekeyed\"} 3",
            "iked_ike_down_total{reason=\"dead\"} 1",
            "iked_ike_datagrams_total{result=\"dropped-malformed\"} 4",
            "espd_rx_packets_total{lcore=\"1\"} 1000",
            "espd_drops_total{lcore=\"1\",reason=\"replay\"} 3",
            "iked_sa_packets_total{connection=\"gw\",child=\"net\",direction=\"in\",spi=\"c1a2b3c4\"} 5",
            "iked_sa_bytes_total{connection=\"gw\",child=\"net\",direction=\"out\",spi=\"70000002\"} 896",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(text.contains("# HELP espd_rx_packets "), "help from the counter's declaration:\n{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Without the SA list: no per-SA series, IKE SAs from the engine's counts.
        let text = render(&Snapshot { sas: Vec::new(), ..snapshot() });
        assert!(!text.contains("iked_sa_packets"), "{text}");
        assert!(text.lines().any(|l| l == "iked_ike_sas{state=\"established\"} 1"), "{text}");
    }

    /// Prometheus's own linter accepts the output.
    #[test]
    fn promtool_accepts_the_output() {
        use std::io::Write;
        let mut child = match std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: promtool: {e} (scripts/setup.sh installs it)");
                return;
            }
            Err(e) => panic!("promtool: {e} (scripts/setup.sh installs it)"),
        };
        let text = to_prometheus_text(&render(&snapshot()));
        assert!(text.contains("# TYPE iked_events_total counter\n") && !text.contains("# EOF"), "{text}");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The example Grafana dashboard (`docs/grafana/espgw-dashboard.json`): every series its
    /// queries name is one iked serves, every event it selects is one `ikectl monitor` has,
    /// and `promtool check rules` parses every query as PromQL (Grafana's
    /// `$__rate_interval` and `$job` put in as Prometheus would see them).
    #[test]
    fn the_grafana_dashboard_queries_what_iked_serves() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana/espgw-dashboard.json");
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let dash: serde_json::Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}"));
        let exprs: Vec<String> = dash["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["expr"].as_str().map(str::to_owned))
            .collect();
        assert!(exprs.len() >= 8, "{exprs:?}");
        let text = to_prometheus_text(&render(&snapshot()));
        let served: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        for e in &exprs {
            let names = e
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("iked_") || w.starts_with("espd_"));
            for n in names {
                assert!(served.contains(&n), "{n} (in `{e}`) is not a series iked serves: {served:?}");
            }
            if let Some(events) = e.split("event=~\"").nth(1).and_then(|r| r.split('"').next()) {
                for ev in events.split('|') {
                    assert!(crate::ctl::protocol::MonitorEvent::KINDS.contains(&ev), "event {ev} in `{e}`");
                }
            }
        }
        let rules: String = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let e = e.replace("$__rate_interval", "1m").replace("$job", "iked").replace('\'', "''");
                format!("      - record: dashboard:query{i}\n        expr: '{e}'\n")
            })
            .collect();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("dashboard-rules.yml");
        std::fs::write(&file, format!("groups:\n  - name: dashboard\n    rules:\n{rules}"))
            .unwrap_or_else(|e| panic!("{e}"));
        match std::process::Command::new("promtool").arg("check").arg("rules").arg(&file).output() {
            Ok(out) => assert!(
                out.status.success(),
                "promtool check rules: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) if std::env::var_os("CI").is_none() => eprintln!("skipped: promtool: {e}"),
            Err(e) => panic!("promtool: {e} (scripts/setup.sh installs prometheus)"),
        }
    }
}
