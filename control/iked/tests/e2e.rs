//! End to end in network namespaces: two complete gateways, `iked` + `espd` each, hosts
//! behind them, keyed by IKEv1 from configuration files alone. The cases are in
//! `scripts/e2e-ike.sh` (Main and Aggressive Mode, PFS, tunnel and transport, IPv4 and
//! IPv6 outer and inner, trap, rekeys under traffic, byte limits, DPD, iked SIGKILLed under
//! traffic);
//! this runs each with the binaries of this build. Needs root and DPDK, as CI has.
//!
//! The cases run one at a time: each starts two busy-polling dataplanes on a 2-core machine.

use std::process::Command;
use std::sync::Mutex;

mod common;
use common::bin;

static SERIAL: Mutex<()> = Mutex::new(());

fn run_case(case: &str) -> String {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/e2e-ike.sh"))
        .arg(case)
        .env("IKED", env!("CARGO_BIN_EXE_iked"))
        .env("IKECTL", env!("CARGO_BIN_EXE_ikectl"))
        .env("ESPD", bin("espd"))
        .env("ESPCTL", bin("espctl"))
        .env("NS_TAG", format!("ike{}{}", std::process::id(), &case[..2]))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "e2e-ike.sh {case} failed (its output above says where)");
    assert!(stdout.contains(&format!("e2e-ike {case}: 1 passed, 0 failed")), "{stdout}");
    stdout
}

#[test]
fn main_mode_pfs_tunnel_ipv4_and_ipv6() {
    let out = run_case("main");
    assert!(out.contains("8 MiB to 198.19.1.10: sha256 equal"));
    assert!(out.contains("4 MiB to 2001:db8:2::10: sha256 equal"));
    assert_eq!(out.matches("SA pair ").count(), 2, "two child SA pairs checked on both sides");
}

#[test]
fn aggressive_mode_cbc_sha256_esn_ipv6_outer() {
    let out = run_case("aggressive");
    assert!(out.contains("8 MiB to 198.19.1.10: sha256 equal"));
    assert_eq!(out.matches("2 SAs, all ESN").count(), 2, "both databases hold ESN SAs");
}

#[test]
fn transport_mode_between_the_gateways() {
    let out = run_case("transport");
    assert!(out.contains("ESP-encapsulated"));
}

#[test]
fn trap_negotiates_on_the_first_packet() {
    let out = run_case("trap");
    assert!(out.contains("SA pair "));
}

#[test]
fn child_rekeys_under_traffic_lose_nothing() {
    let out = run_case("rekey");
    assert!(out.contains("lost 0"), "{out}");
    assert!(out.contains("rekey-related drops 0"));
    assert!(out.contains("rekey: ikectl monitor streamed "), "{out}");
}

#[test]
fn dead_peer_detected_and_restarted() {
    let out = run_case("dpd");
    assert!(out.contains("declared gw-b dead"));
    assert!(out.contains("dpd: ikectl monitor streamed "), "{out}");
}

#[test]
fn iked_sigkill_under_traffic_loses_nothing() {
    let out = run_case("restart");
    assert!(out.contains("lost 0"), "{out}");
}

#[test]
fn isakmp_sa_reestablished_under_traffic_loses_nothing() {
    let out = run_case("reauth");
    assert!(out.contains("lost 0"), "{out}");
    assert!(out.contains("re-establishments logged"));
}

#[test]
fn hostile_ike_is_counted_and_leaves_the_tunnel_alone() {
    let out = run_case("hostile");
    assert!(out.contains("lost 0"), "{out}");
    assert!(out.contains("dropped-no-config = 5000"));
    assert!(out.contains("none found"), "secrets grep ran");
}

#[test]
fn soft_byte_limits_from_the_dataplane_rekey() {
    let out = run_case("rekey-bytes");
    assert!(out.contains("16 MiB to 198.19.1.10: sha256 equal"));
    assert!(out.contains("drops a rekey could cause: 0"));
}

#[test]
fn a_full_sa_table_refuses_the_quick_mode_and_keeps_the_tunnel() {
    let out = run_case("full");
    assert!(out.contains("quick-modes-refused: 1"), "{out}");
    assert!(out.contains("first child still carries traffic"));
}

#[test]
fn hard_byte_limits_close_to_the_soft_ones_are_never_reached() {
    let out = run_case("life-bytes");
    assert!(out.contains("16 MiB to 198.19.1.10: sha256 equal"), "{out}");
    assert!(out.contains(", lost 0"), "{out}");
    assert!(out.contains(", 0 SAs reached their hard limit"), "{out}");
    assert!(out.contains("drops a rekey could cause: 0"), "{out}");
}

#[test]
fn prometheus_reads_the_tunnels_rate_across_rekeys() {
    let out = run_case("metrics");
    for series in ["espd encap packets/s", "child SAs' outbound packets/s"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("metrics: {series}: median")))
            .unwrap_or_else(|| panic!("no {series} line in {out}"));
        assert!(!line.ends_with("MISS"), "{line}");
    }
    assert!(out.contains("metrics: pings sent 2000, answered 2000"), "{out}");
}
