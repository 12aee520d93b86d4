//! The control server over a real Unix socket in a temp dir, with a fake
//! handler: requests, hostile input, log following, single instance.

use super::client::Client;
use super::protocol::*;
use super::server::{self, ControlHandler, ServerCounters};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, watch};

struct Fake {
    log: broadcast::Sender<LogRecord>,
    events: broadcast::Sender<EventRecord>,
}

impl ControlHandler for Fake {
    async fn list_sas(&self, ike: Option<String>) -> Result<Vec<IkeSaInfo>, CtlError> {
        let all = vec![
            IkeSaInfo { name: "home".into(), uniqueid: 1, state: "ESTABLISHED".into(), ..Default::default() },
            IkeSaInfo { name: "work".into(), uniqueid: 2, state: "CONNECTING".into(), ..Default::default() },
        ];
        Ok(all.into_iter().filter(|s| ike.as_ref().is_none_or(|n| *n == s.name)).collect())
    }
    async fn list_conns(&self) -> Result<Vec<ConnectionInfo>, CtlError> {
        Ok(vec![ConnectionInfo { name: "home".into(), version: "IKEv1".into(), ..Default::default() }])
    }
    async fn initiate(&self, target: TargetName) -> Result<String, CtlError> {
        match target {
            TargetName::Child(c) if c == "net" => Ok("initiated child net".into()),
            other => Err(CtlError::new(ErrorCode::NotFound, format!("no {other:?}"))),
        }
    }
    async fn terminate(&self, target: TargetName) -> Result<String, CtlError> {
        Ok(format!("terminated {target:?}"))
    }
    async fn rekey(&self, target: TargetName) -> Result<String, CtlError> {
        Ok(format!("rekeying {target:?}"))
    }
    async fn list_pols(&self) -> Result<Vec<PolicyInfo>, CtlError> {
        Ok(vec![PolicyInfo { name: "net".into(), reqid: 1, ..Default::default() }])
    }
    async fn load_all(&self) -> Result<LoadSummary, CtlError> {
        Ok(LoadSummary { unchanged: vec!["home".into()], ..Default::default() })
    }
    async fn list_certs(&self) -> Result<(Vec<CertInfo>, Vec<CrlInfo>), CtlError> {
        Ok((
            vec![CertInfo {
                subject: "O=Test, CN=gw-a".into(),
                key: "ECDSA P-256".into(),
                ..Default::default()
            }],
            vec![CrlInfo { issuer: "O=Test, CN=ca".into(), revoked: 1, ..Default::default() }],
        ))
    }
    async fn stats(&self) -> Result<Stats, CtlError> {
        Ok(Stats { uptime: 9, connections: 1, ..Default::default() })
    }
    fn follow_log(&self) -> Result<broadcast::Receiver<LogRecord>, CtlError> {
        Ok(self.log.subscribe())
    }
    fn follow_events(&self) -> Result<broadcast::Receiver<EventRecord>, CtlError> {
        Ok(self.events.subscribe())
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    log: broadcast::Sender<LogRecord>,
    events: broadcast::Sender<EventRecord>,
    counters: Arc<ServerCounters>,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("run/iked.sock");
    let listener = server::bind(&path).await.unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = broadcast::channel(16);
    let (events, _) = broadcast::channel(2);
    let (stop, stop_rx) = watch::channel(false);
    let counters = Arc::new(ServerCounters::default());
    let handler = Arc::new(Fake { log: log.clone(), events: events.clone() });
    let task = tokio::spawn(server::serve(listener, handler, Arc::clone(&counters), stop_rx));
    Harness { _dir: dir, path, stop, task, log, events, counters }
}

/// Waits up to a second until `tx` has `n` receivers (a follower subscribed,
/// or gone).
async fn followers<T>(tx: broadcast::Sender<T>, n: usize) {
    for _ in 0..100 {
        if tx.receiver_count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw_exchange(path: &std::path::Path, bytes: &[u8]) -> Vec<String> {
    let stream = UnixStream::connect(path).await.unwrap_or_else(|e| panic!("{e}"));
    let (r, mut w) = stream.into_split();
    w.write_all(bytes).await.unwrap_or_else(|e| panic!("{e}"));
    w.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let mut lines = BufReader::new(r).lines();
    let mut out = Vec::new();
    while let Ok(Ok(Some(l))) = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await {
        out.push(l);
    }
    out
}

async fn call(c: &mut Client, cmd: Command) -> Reply {
    c.call(cmd).await.map(|(r, _)| r.reply).unwrap_or_else(|e| panic!("{e}"))
}

fn reply(line: &str) -> Reply {
    serde_json::from_str::<Response>(line).map(|r| r.reply).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[tokio::test]
async fn every_command_gets_its_reply() {
    let h = start().await;
    let mut c = Client::connect(&h.path).await.unwrap_or_else(|e| panic!("{e}"));
    match call(&mut c, Command::ListSas { ike: Some("work".into()) }).await {
        Reply::Sas { ike_sas } => assert_eq!(ike_sas.iter().map(|s| s.uniqueid).collect::<Vec<_>>(), vec![2]),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(call(&mut c, Command::ListConns {}).await, Reply::Conns { connections } if connections.len() == 1)
    );
    match call(&mut c, Command::ListCerts {}).await {
        Reply::Certs { certificates, crls } => {
            assert_eq!(
                certificates.iter().map(|c| c.subject.as_str()).collect::<Vec<_>>(),
                ["O=Test, CN=gw-a"]
            );
            assert_eq!(crls.iter().map(|c| c.revoked).collect::<Vec<_>>(), [1]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        call(&mut c, Command::Initiate(Target { child: Some("net".into()), ike: None })).await,
        Reply::Done { message: "initiated child net".into() }
    );
    assert!(matches!(
        call(&mut c, Command::Initiate(Target { child: None, ike: Some("nope".into()) })).await,
        Reply::Error(CtlError { code: ErrorCode::NotFound, .. })
    ));
    assert_eq!(
        call(&mut c, Command::Terminate(Target { child: Some("a".into()), ike: Some("b".into()) })).await,
        Reply::Error(CtlError::new(ErrorCode::BadRequest, "give exactly one of `child` and `ike`"))
    );
    assert!(matches!(call(&mut c, Command::LoadAll {}).await, Reply::Loaded(s) if s.unchanged == ["home"]));
    match call(&mut c, Command::Stats {}).await {
        Reply::Stats(s) => {
            assert_eq!(s.uptime, 9);
            assert_eq!((s.ctl_requests, s.ctl_errors), (8, 2), "counted by the server");
        }
        other => panic!("{other:?}"),
    }
    let _ = h.stop.send(true);
    let _ = h.task.await;
}

#[tokio::test]
async fn malformed_requests_get_errors_and_the_connection_survives() {
    let h = start().await;
    let input = b"this is not json\n{\"version\":9,\"command\":\"stats\"}\n\n{\"version\":1,\"command\":\"reboot\"}\n[]\n{\"version\":1,\"command\":\"stats\"}\n";
    let lines = raw_exchange(&h.path, input).await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        matches!(reply(&lines[0]), Reply::Error(CtlError { code: ErrorCode::BadRequest, message }) if message.starts_with("malformed JSON"))
    );
    assert_eq!(
        reply(&lines[1]),
        Reply::Error(CtlError::new(
            ErrorCode::UnsupportedVersion,
            "unsupported protocol version 9; this iked speaks version 1"
        ))
    );
    assert!(matches!(reply(&lines[2]), Reply::Error(CtlError { code: ErrorCode::BadRequest, .. })));
    assert_eq!(
        reply(&lines[3]),
        Reply::Error(CtlError::new(ErrorCode::BadRequest, "a request is a JSON object"))
    );
    assert!(matches!(reply(&lines[4]), Reply::Stats(_)), "still serving after garbage");
    // Invalid UTF-8 and binary junk are just malformed JSON.
    let lines = raw_exchange(&h.path, b"\xff\xfe\x00\x01\n").await;
    assert!(matches!(reply(&lines[0]), Reply::Error(CtlError { code: ErrorCode::BadRequest, .. })));
    assert_eq!(h.counters.errors.load(std::sync::atomic::Ordering::Relaxed), 5);
}

#[tokio::test]
async fn oversize_lines_are_refused_and_the_server_lives_on() {
    let h = start().await;
    let mut big = vec![b'x'; MAX_REQUEST_LEN + 10];
    big.push(b'\n');
    let lines = raw_exchange(&h.path, &big).await;
    assert_eq!(lines.len(), 1, "error, then the connection is closed");
    assert_eq!(
        reply(&lines[0]),
        Reply::Error(CtlError::new(
            ErrorCode::TooLong,
            format!("request longer than {MAX_REQUEST_LEN} bytes")
        ))
    );
    // A line of exactly the limit (newline included) is still read.
    let mut edge = br#"{"version":1,"command":"stats"}"#.to_vec();
    edge.resize(MAX_REQUEST_LEN - 1, b' ');
    edge.push(b'\n');
    let lines = raw_exchange(&h.path, &edge).await;
    assert!(matches!(reply(&lines[0]), Reply::Stats(_)), "{lines:?}");
}

#[tokio::test]
async fn log_streams_until_the_client_leaves() {
    let h = start().await;
    let mut c = Client::connect(&h.path).await.unwrap_or_else(|e| panic!("{e}"));
    c.send(Command::Log {}).await.unwrap_or_else(|e| panic!("{e}"));
    // Wait until the server subscribed.
    followers(h.log.clone(), 1).await;
    let rec = LogRecord { time_ms: 1, level: "INFO".into(), subsystem: "ike".into(), message: "up".into() };
    let _ = h.log.send(rec.clone());
    let _ = h.log.send(LogRecord { message: "down".into(), ..rec.clone() });
    let got = c.receive().await.unwrap_or_else(|e| panic!("{e}")).map(|(r, _)| r.reply);
    assert_eq!(got, Some(Reply::Log(rec)));
    let got = c.receive().await.unwrap_or_else(|e| panic!("{e}")).map(|(r, _)| r.reply);
    assert!(matches!(got, Some(Reply::Log(r)) if r.message == "down"));
    drop(c);
    followers(h.log.clone(), 0).await;
    assert_eq!(h.log.receiver_count(), 0, "the follower ended when the client closed");
}

/// `monitor` streams events as JSON lines tagged `event` (a client that
/// reads too slowly is told how many it missed), and ends with the client.
#[tokio::test]
async fn monitor_streams_events_until_the_client_leaves() {
    let h = start().await;
    let stream = UnixStream::connect(&h.path).await.unwrap_or_else(|e| panic!("{e}"));
    let (r, mut w) = stream.into_split();
    w.write_all(b"{\"version\":1,\"command\":\"monitor\"}\n").await.unwrap_or_else(|e| panic!("{e}"));
    followers(h.events.clone(), 1).await;
    let up = MonitorEvent::ChildUp {
        ike: "gw".into(),
        child: "net".into(),
        uniqueid: 2,
        spi_in: "c1a2b3c4".into(),
        spi_out: "0000abcd".into(),
        local_ts: "10.1.0.0/16".into(),
        remote_ts: "10.2.0.0/16".into(),
    };
    let _ = h.events.send(EventRecord { time_ms: 1_700_000_000_123, event: up.clone() });
    let mut lines = BufReader::new(r).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the stream ended"))
    };
    let line = next().await;
    let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["type"], "event", "{line}");
    assert_eq!(json["event"], "child-up", "{line}");
    assert_eq!(
        (json["time_ms"].as_u64(), json["spi-in"].as_str()),
        (Some(1_700_000_000_123), Some("c1a2b3c4")),
        "{line}"
    );
    assert_eq!(reply(&line), Reply::Event(EventRecord { time_ms: 1_700_000_000_123, event: up }));
    // Three events into a backlog of two: the oldest is lost and said so.
    for uniqueid in 1..=3 {
        let _ = h
            .events
            .send(EventRecord { time_ms: 2, event: MonitorEvent::DpdProbe { ike: "gw".into(), uniqueid } });
    }
    assert_eq!(reply(&next().await), Reply::EventsLagged { missed: 1 });
    let probe = |uniqueid| {
        Reply::Event(EventRecord { time_ms: 2, event: MonitorEvent::DpdProbe { ike: "gw".into(), uniqueid } })
    };
    assert_eq!(reply(&next().await), probe(2));
    assert_eq!(reply(&next().await), probe(3));
    drop(w);
    drop(lines);
    followers(h.events.clone(), 0).await;
    assert_eq!(h.events.receiver_count(), 0, "the follower ended when the client closed");
}

#[tokio::test]
async fn a_second_daemon_is_refused_and_stale_sockets_are_replaced() {
    let h = start().await;
    let e = server::bind(&h.path).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        e,
        format!("another iked is already running (its control socket {} answers)", h.path.display())
    );
    let _ = h.stop.send(true);
    let _ = h.task.await;
    // The listener is gone but the file is still there: stale, replaced.
    assert!(h.path.exists());
    let again = server::bind(&h.path).await;
    assert!(again.is_ok());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&h.path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    assert_eq!(mode, 0o600);
}
