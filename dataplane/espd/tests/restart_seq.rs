//! SIGKILL espd in the middle of traffic and start it again on the same SA database: the SAs
//! are resumed from the region, and no outbound ESP sequence number is ever sent twice. The
//! numbers are read on the wire (espd's `net_pcap` output), not only from the region.
//!
//! First run: the inside port replays `gw_pcap.py`'s 40 plaintext packets forever
//! (`infinite_rx=1`), so espd encrypts continuously; once the outbound SA has used a few
//! thousand numbers the test SIGKILLs it (no clean-up runs: whatever it had reserved is
//! lost with it). Second run: the same 40 packets once, and the peer's 29 good ESP packets
//! of the first run again. Expected: all 40 encrypted with SPI 0x2000 and sequence numbers
//! that continue right after the last one the killed process reserved (so strictly above
//! every number it put on the wire), and every replayed inbound packet dropped as a replay.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sadb::*;

/// (SPI, sequence number) of every ESP frame of a pcap file. Tolerates a last record cut
/// short (a SIGKILLed writer).
fn esp_seqs(path: &Path) -> Vec<(u32, u32)> {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "{}: no pcap header", path.display());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let Some(f) = b.get(at + 16..at + 16 + incl) else { break };
        at += 16 + incl;
        // Ethernet + IPv4 (no options from espd) + ESP.
        if f.len() >= 14 + 20 + 8 && f[12..14] == [0x08, 0x00] && f[14 + 9] == 50 {
            let be = |o: usize| u32::from_be_bytes(f[o..o + 4].try_into().unwrap());
            out.push((be(34), be(38)));
        }
    }
    out
}

fn out_seq(db: &Path) -> u64 {
    let r = Region::attach(db).unwrap();
    let sas = r.list_sas();
    sas.iter().find(|e| e.config.spi == 0x2000).unwrap().stats.seq
}

fn config(d: &Path, db: &Path, run: u32, infinite: bool) -> std::path::PathBuf {
    let prefix = format!("espd-restart-{}-{run}", std::process::id());
    let eal = common::pcap_gateway_eal(
        &prefix,
        format!("net_pcap0,rx_pcap={d}/outside_in.pcap,tx_pcap={d}/outside_out{run}.pcap", d = d.display()),
        format!(
            "net_pcap1,rx_pcap={d}/inside_in.pcap,tx_pcap={d}/inside_out{run}.pcap{}",
            if infinite { ",infinite_rx=1" } else { "" },
            d = d.display()
        ),
    );
    let path = d.join(format!("espd{run}.toml"));
    std::fs::write(&path, common::gateway_config(&eal, "net_pcap0", "net_pcap1", db, 0.0)).unwrap();
    path
}

/// A SIGKILLed EAL leaves its runtime directory behind; remove it.
fn remove_runtime_dir(run: u32) {
    let prefix = format!("espd-restart-{}-{run}", std::process::id());
    for base in [
        "/var/run/dpdk".to_string(),
        format!("{}/dpdk", std::env::var("XDG_RUNTIME_DIR").unwrap_or_default()),
    ] {
        let _ = std::fs::remove_dir_all(Path::new(&base).join(&prefix));
    }
}

#[test]
fn sigkill_and_restart_resumes_the_sas_without_reusing_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = common::scapy(d, "make", &[]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let db = d.join("sadb");
    common::create_sadb(&db);

    // Run 1: continuous traffic, then SIGKILL.
    let cfg1 = config(d, &db, 1, true);
    let mut espd = Command::new(env!("CARGO_BIN_EXE_espd"))
        .arg("--config")
        .arg(&cfg1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out_seq(&db) < 5000 {
        if let Some(status) = espd.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(espd.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("espd exited early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "espd encrypted only {} packets in 60 s", out_seq(&db));
        std::thread::sleep(Duration::from_millis(5));
    }
    espd.kill().unwrap(); // SIGKILL
    let status = espd.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    remove_runtime_dir(1);
    let reserved = out_seq(&db);
    let before = esp_seqs(&d.join("outside_out1.pcap"));
    let sent: Vec<u32> = before.iter().filter(|(spi, _)| *spi == 0x2000).map(|(_, s)| *s).collect();
    let max_before = *sent.iter().max().expect("the first run put ESP on the wire");
    assert!(u64::from(max_before) <= reserved, "on the wire {max_before}, reserved {reserved}");
    let mut unique = sent.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), sent.len(), "no number twice within the first run");
    println!(
        "first run: {} ESP frames on the wire, sequence numbers 1..={max_before}; {reserved} reserved when killed",
        sent.len()
    );

    // Run 2: the same SA database, finite input.
    let cfg2 = config(d, &db, 2, false);
    let report = common::run_espd(&cfg2, 800);
    let c = &report["counters"];
    assert_eq!(c["encap-packets"], 40, "the outbound SA was resumed: {report}");
    assert_eq!(c["decap-packets"].as_u64().unwrap_or(0), 0, "{report}");
    assert_eq!(c["drop-replay"], 30, "the peer's packets of the first run are replays now: {report}");
    assert_eq!(c["drop-auth"], 1, "{report}");
    assert_eq!(c["drop-no-sa"], 1, "{report}");
    let after = esp_seqs(&d.join("outside_out2.pcap"));
    assert_eq!(after.len(), 40);
    assert!(after.iter().all(|(spi, _)| *spi == 0x2000), "{after:?}");
    let seqs: Vec<u64> = after.iter().map(|(_, s)| u64::from(*s)).collect();
    assert_eq!(
        seqs,
        (reserved + 1..=reserved + 40).collect::<Vec<_>>(),
        "numbers continue after the reservation"
    );
    assert!(
        seqs.iter().all(|&s| s > u64::from(max_before)),
        "strictly above every number sent before the kill"
    );
    assert_eq!(out_seq(&db), reserved + 40);
    println!("second run: 40 ESP frames, sequence numbers {}..={}", reserved + 1, reserved + 40);
}
