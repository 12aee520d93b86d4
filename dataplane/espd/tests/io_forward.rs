//! espd forwards a capture unchanged: frames written to a pcap enter on `net_pcap0`, leave on
//! `net_pcap1` into another pcap, and the counters in espd's JSON report agree.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use espd::pcap;

/// Ethernet + IPv4 + UDP frames of assorted sizes, each distinct.
fn frames() -> Vec<Vec<u8>> {
    [60usize, 64, 128, 333, 512, 1000, 1514]
        .iter()
        .cycle()
        .take(100)
        .enumerate()
        .map(|(i, &len)| {
            let mut f = vec![0u8; len];
            f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
            f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[23] = 17;
            for (j, b) in f[42..].iter_mut().enumerate() {
                *b = (i * 7 + j) as u8;
            }
            f[42] = i as u8;
            f
        })
        .collect()
}

fn run_espd(dir: &Path, input: &Path, output: &Path) -> serde_json::Value {
    let empty = dir.join("empty.pcap");
    let prefix = format!("espd-io-test-{}", std::process::id());
    pcap::write_all(&mut File::create(&empty).unwrap(), std::iter::empty()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .args(["--idle-exit-ms", "700", "--stats-interval", "0", "--json", "--"])
        .args(["-l", "0,1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"])
        .args(["--file-prefix", &prefix, "--log-level", "error"])
        .arg(format!(
            "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
            input.display(),
            dir.join("back.pcap").display()
        ))
        .arg(format!("--vdev=net_pcap1,rx_pcap={},tx_pcap={}", empty.display(), output.display()))
        .output()
        .expect("espd runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "espd failed: {stderr}");
    assert!(!Path::new("/var/run/dpdk").join(&prefix).exists(), "espd removes its EAL runtime directory");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no JSON report; stderr: {stderr}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn pcap_in_pcap_out_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    let sent = frames();
    pcap::write_all(&mut File::create(&input).unwrap(), sent.iter().map(Vec::as_slice)).unwrap();

    let report = run_espd(dir.path(), &input, &output);

    let got = pcap::read_all(&mut File::open(&output).unwrap()).unwrap();
    assert_eq!(got.len(), sent.len(), "every frame came out");
    assert_eq!(got, sent, "frames are unchanged and in order");
    let back = pcap::read_all(&mut File::open(dir.path().join("back.pcap")).unwrap()).unwrap();
    assert!(back.is_empty(), "nothing flowed the other way");

    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    let ports = report["ports"].as_array().unwrap();
    assert_eq!(ports[0]["name"], "net_pcap0");
    assert_eq!(ports[0]["ipackets"], 100);
    assert_eq!(ports[0]["ibytes"], bytes);
    assert_eq!(ports[1]["opackets"], 100);
    assert_eq!(ports[1]["obytes"], bytes);
    assert_eq!(ports[1]["ipackets"], 0);
    let w = &report["workers"][0];
    assert_eq!(
        (w["rx"].as_u64(), w["tx"].as_u64(), w["tx_dropped"].as_u64()),
        (Some(100), Some(100), Some(0))
    );
}

#[test]
fn clear_errors() {
    // No worker lcore.
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .args([
            "--duration",
            "1",
            "--",
            "-l",
            "0",
            "--no-pci",
            "--no-huge",
            "-m",
            "128",
            "--no-shconf",
            "--no-telemetry",
        ])
        .args([
            "--file-prefix",
            &format!("espd-err-{}", std::process::id()),
            "--log-level",
            "error",
            "--vdev",
            "net_null0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no worker lcore"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A bad EAL argument.
    let out = Command::new(env!("CARGO_BIN_EXE_espd")).args(["--", "--no-such-eal-flag"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EAL initialisation failed"));

    // A port that does not exist.
    let out = Command::new(env!("CARGO_BIN_EXE_espd"))
        .args([
            "--ports",
            "0,5",
            "--",
            "-l",
            "0,1",
            "--no-pci",
            "--no-huge",
            "-m",
            "128",
            "--no-shconf",
            "--no-telemetry",
        ])
        .args([
            "--file-prefix",
            &format!("espd-err2-{}", std::process::id()),
            "--log-level",
            "error",
            "--vdev",
            "net_null0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("port 5 does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
