//! `espd bench` runs its traffic source through the real gateway pipeline on two `net_null`
//! ports and reports sane figures: packets were sent, nothing was dropped (in particular no
//! replay or ICV failure across the re-arms between passes over the pre-generated ESP
//! packets), and every JSON field is there. Benchmarks measure; this only checks that the
//! harness works, not how fast it is.

use std::process::Command;

use serde_json::Value;

/// Runs `espd bench OPTIONS -- EAL` and returns its JSON lines.
fn bench(tag: &str, options: &[&str]) -> Vec<Value> {
    let prefix = format!("espd-bench-{tag}-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("bench")
        .args(options)
        .args(["--duration", "0.4", "--warmup", "0.1", "--stats-interval", "0.2", "--"])
        .args(["-l", "0,1", "--no-pci", "--no-huge", "-m", "512", "--no-shconf", "--no-telemetry"])
        .args(["--file-prefix", &prefix, "--log-level", "error"])
        .args(["--vdev", "net_null0", "--vdev", "net_null1"])
        .output()
        .expect("espd runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "espd bench failed: {stderr}");
    assert!(stderr.contains("TX-Mpps"), "a statistics table while running: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nstderr: {stderr}")))
        .collect()
}

fn check(r: &Value) {
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    assert!(r["packets"].as_u64().unwrap() > 1000, "packets sent: {r}");
    assert!(f("mpps") > 0.0 && f("gbps") > 0.0 && f("gbps_wire") > 0.0, "{r}");
    assert!(f("cycles_per_packet") > 0.0 && f("duration_s") > 0.3, "{r}");
    assert_eq!(r["drops"], serde_json::json!({}), "no packet dropped: {r}");
    assert_eq!(r["no_mbuf"], 0, "{r}");
    let lat = &r["latency_ns"];
    let (p50, p99, p999) =
        (lat["p50"].as_u64().unwrap(), lat["p99"].as_u64().unwrap(), lat["p999"].as_u64().unwrap());
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{r}");
    assert!(
        r["packet_latency_ns"]["p99"].as_u64().unwrap() >= p99,
        "a burst waits longer than a packet: {r}"
    );
    let cost = &r["cost"];
    let split: f64 = ["io_classify", "crypto", "rest"].iter().map(|k| cost[k].as_f64().unwrap()).sum();
    assert!((split - f("cycles_per_packet")).abs() / f("cycles_per_packet") < 0.25, "the split adds up: {r}");
    if r["mode"] != "io" {
        assert!(cost["crypto"].as_f64().unwrap() > 0.0 && f("crypto_only_mpps") > 0.0, "{r}");
    }
    if r["mode"] == "decap" || r["mode"] == "both" {
        assert!(r["passes"].as_u64().unwrap() >= 2, "the ESP pool was replayed after a re-arm: {r}");
    }
}

#[test]
fn gcm_encap_decap_both_io_v4() {
    let records =
        bench("v4", &["--mode", "encap,decap,both,io", "--sas", "1,3", "--size", "64,imix", "--burst", "32"]);
    assert_eq!(records.len(), 2 * 4 * 2, "one line per configuration");
    for r in &records {
        assert_eq!(r["algorithm"], "aes-gcm-128");
        assert_eq!(r["backend"], "ipsec-mb");
        assert_eq!(r["family"], 4);
        assert_eq!(r["workers"], 1);
        check(r);
    }
    let imix = records.iter().find(|r| r["size"] == "imix").unwrap();
    assert!((imix["avg_frame"].as_f64().unwrap() - (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0).abs() < 0.01);
    // Encapsulated frames are longer on the wire than their plaintext.
    let enc = records.iter().find(|r| r["mode"] == "encap" && r["size"] == 64).unwrap();
    assert!(enc["gbps_wire"].as_f64().unwrap() > enc["gbps"].as_f64().unwrap());
}

#[test]
fn cbc_sha256_v6_rust_backend() {
    let records = bench(
        "v6",
        &[
            "--mode",
            "encap,decap",
            "--algo",
            "aes-cbc-sha256",
            "--key-bits",
            "256",
            "--backend",
            "rust",
            "--family",
            "6",
            "--sas",
            "2",
            "--size",
            "1420",
            "--burst",
            "16",
            "--pool-packets",
            "64",
        ],
    );
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["algorithm"], "aes-cbc-256-hmac-sha256-128");
        assert_eq!(r["backend"], "rust");
        assert_eq!(r["family"], 6);
        assert_eq!(r["size"], 1420);
        check(r);
    }
}

#[test]
fn bad_options_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .args(["bench", "--size", "9000", "--", "-l", "0,1"])
        .output()
        .expect("espd runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64..=1518"));
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .args(["bench", "--sas", "2000000", "--", "-l", "0,1"])
        .output()
        .expect("espd runs");
    assert!(!out.status.success());
}

#[test]
fn stage_clock_splits_the_measured_cycles() {
    let records = bench("stages", &["--mode", "encap,decap", "--sas", "1,50", "--size", "64", "--stages"]);
    assert_eq!(records.len(), 4);
    for r in &records {
        check(r);
        let s = &r["stages"];
        let stage = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("stage {k} missing: {r}"));
        let names = ["fill", "classify", "lookup", "esp", "crypto", "post", "tx"];
        for k in names {
            assert!(stage(k) > 0.0, "every stage takes time: {k} in {r}");
        }
        // The stages cover the measured loop: their sum is the TSC cycles per generated
        // packet (`cycles_per_packet` is that, scaled by the share of the core), less the
        // loop's own bookkeeping.
        let sum: f64 = names.iter().map(|k| stage(k)).sum();
        let share = r["cpu_share"].as_f64().unwrap_or(1.0);
        let tsc_per_packet = r["cycles_per_packet"].as_f64().unwrap() / share;
        assert!(
            sum <= tsc_per_packet * 1.1 && sum >= tsc_per_packet * 0.6,
            "stages {sum} vs {tsc_per_packet}: {r}"
        );
    }
    // Without the flag, no stage field (and no clock reads in the worker).
    let plain = bench("nostages", &["--mode", "encap", "--size", "64"]);
    assert!(plain[0].get("stages").is_none(), "{}", plain[0]);
}
