//! ike-load against our own engine as responder, on loopback, no root
//! needed: every tunnel must come up, and the generator's counts must equal
//! the `InstallSa` events both engines really produced.

use serde_json::Value;
use std::process::{Command, Output};

fn ike_load(args: &[&str]) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_ike-load")).args(args).output().expect("run ike-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("last line is not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out, json)
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

/// Loopback sources 127.0.1.1.. with free ports: the engines still see
/// 500/4500.
const LOOPBACK: &[&str] = &[
    "--self-responder",
    "--responder",
    "127.0.0.1",
    "--responder-port",
    "0",
    "--responder-port-nat-t",
    "0",
    "--source-base",
    "127.0.1.1",
    "--source-port",
    "0",
    "--source-port-nat-t",
    "0",
    "--seed",
    "7",
    "--timeout",
    "60",
];

fn fifty(proposal: &str) {
    let mut args = LOOPBACK.to_vec();
    args.extend(["-n", "50", "--proposal", proposal, "--label", "self"]);
    let (out, r) = ike_load(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ike-load failed: {text}");
    assert_eq!(count(&r, "tunnels"), 50);
    assert_eq!(count(&r, "established"), 50, "{text}");
    assert_eq!(count(&r, "phase1_established"), 50);
    assert_eq!(count(&r, "failures"), 0, "{text}");
    assert_eq!(count(&r, "unattributed_events"), 0);
    assert_eq!(count(&r, "extra_installs"), 0);
    assert_eq!(count(&r, "stray_datagrams"), 0);
    assert_eq!(count(&r, "deletions"), 0);
    // The responder's own InstallSa events: one per tunnel, none failed.
    let ours = &r["self_responder"];
    assert_eq!(count(ours, "installs"), 50, "{text}");
    assert_eq!(count(ours, "ike_sas"), 50);
    assert_eq!(count(ours, "failures"), 0);
    // Main Mode 3 + Quick Mode 2 datagrams per tunnel from us, without
    // retransmissions 5 x 50 exactly; NAT-T finds no NAT on loopback.
    let retransmissions = count(&r, "retransmissions");
    assert_eq!(count(&r, "datagrams_sent"), 250 + retransmissions + count(&r, "keepalives"));
    assert_eq!(count(&r, "keepalives"), 0);
    assert!(r["handshakes_per_second"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(r["responder_cpu_seconds"].as_f64().is_some(), "thread CPU time read");
    assert_eq!(r["esp"], format!("aes128gcm16-{}", proposal.rsplit('-').next().unwrap_or_default()));
}

#[test]
fn fifty_tunnels_modp2048_with_pfs() {
    fifty("aes128-sha256-modp2048");
}

#[test]
fn fifty_tunnels_ecp256_with_pfs() {
    fifty("aes128-sha256-ecp256");
}

#[test]
fn tunnels_to_nobody_fail_and_are_counted() {
    // A port nobody listens on: every tunnel times out.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let args = [
        "-n",
        "3",
        "--responder",
        "127.0.0.1",
        "--responder-port",
        &port,
        "--responder-port-nat-t",
        &port,
        "--source-base",
        "127.0.2.1",
        "--source-port",
        "0",
        "--source-port-nat-t",
        "0",
        "--timeout",
        "1",
        "--retransmit-ms",
        "50",
        "--linger-ms",
        "0",
    ];
    let (out, r) = ike_load(&args);
    assert!(!out.status.success(), "failures must make the exit status non-zero");
    assert_eq!(count(&r, "established"), 0);
    assert_eq!(count(&r, "failures"), 3);
    assert!(count(&r, "retransmissions") >= 3, "{r}");
}

#[test]
fn our_responder_needs_one_source_per_tunnel() {
    let mut args = LOOPBACK.to_vec();
    args.extend(["-n", "4", "--sources", "2"]);
    let out = Command::new(env!("CARGO_BIN_EXE_ike-load")).args(&args).output().expect("run ike-load");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one source per tunnel"));
}
