//! espctl end to end: every command against a real region file, JSON output checked, bad
//! arguments refused in one line that names them, keys never printed.

use std::path::Path;
use std::process::{Command, Output};

fn espctl(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_espctl")).arg("--sadb").arg(db).args(args).output().unwrap()
}

fn ok_json(db: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let o = espctl(db, &a);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn one_line_error(db: &Path, args: &[&str], code: i32, needle: &str) {
    let o = espctl(db, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.starts_with("espctl: ") && err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
}

const GCM_KEY: &str = "00112233445566778899aabbccddeeff01020304";

#[test]
fn manual_keying_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "1024", "--policies", "64", "--readers", "4"]);

    let add_in = [
        "sa",
        "add",
        "--spi",
        "0x1000",
        "--dir",
        "in",
        "--src",
        "198.18.0.2",
        "--dst",
        "198.18.0.1",
        "--enc",
        "aes128gcm16",
        "--enc-key",
        GCM_KEY,
        "--replay-window",
        "128",
        "--local-ts",
        "198.18.1.0/24",
        "--remote-ts",
        "198.19.1.0/24",
    ];
    assert_eq!(ok_json(&db, &add_in)["slot"], 0);
    one_line_error(&db, &add_in, 1, "exists already");
    ok_json(
        &db,
        &[
            "sa",
            "add",
            "--spi",
            "0x2000",
            "--dir",
            "out",
            "--src",
            "198.18.0.1",
            "--dst",
            "198.18.0.2",
            "--enc",
            "aes256",
            "--enc-key",
            &"ab".repeat(32),
            "--integ",
            "sha256",
            "--integ-key",
            &"cd".repeat(32),
            "--reqid",
            "5",
            "--encap-sport",
            "4500",
            "--encap-dport",
            "4500",
            "--esn",
        ],
    );
    ok_json(
        &db,
        &[
            "policy",
            "add",
            "--id",
            "1",
            "--dir",
            "out",
            "--src",
            "198.18.1.0/24",
            "--dst",
            "198.19.1.0/24",
            "--action",
            "protect",
            "--reqid",
            "5",
        ],
    );
    ok_json(
        &db,
        &[
            "policy",
            "add",
            "--id",
            "2",
            "--dir",
            "out",
            "--src",
            "0.0.0.0/0",
            "--dst",
            "0.0.0.0/0",
            "--proto",
            "udp",
            "--dport",
            "500",
            "--action",
            "bypass",
            "--priority",
            "1",
        ],
    );

    let sas = ok_json(&db, &["sa", "list"]);
    let sas = sas.as_array().unwrap();
    assert_eq!(sas.len(), 2);
    assert_eq!(sas[0]["spi"], "0x00001000");
    assert_eq!(
        (sas[0]["dir"].as_str(), sas[0]["enc"].as_str(), sas[0]["replay_window"].as_u64()),
        (Some("in"), Some("aes128gcm16"), Some(128))
    );
    assert_eq!(
        (sas[1]["enc"].as_str(), sas[1]["integ"].as_str(), sas[1]["esn"].as_bool()),
        (Some("aes256"), Some("sha256"), Some(true))
    );
    assert_eq!(sas[1]["udp_encap"], serde_json::json!([4500, 4500]));
    let table = String::from_utf8(espctl(&db, &["sa", "list"]).stdout).unwrap();
    assert!(table.contains("198.18.0.2 -> 198.18.0.1") && table.contains("0x00002000"), "{table}");
    for out in [serde_json::Value::Array(sas.clone()).to_string(), table] {
        assert!(
            !out.contains("00112233") && !out.contains("abababab") && !out.contains("cdcdcdcd"),
            "keys leaked: {out}"
        );
    }

    let ps = ok_json(&db, &["policy", "list"]);
    let ps = ps.as_array().unwrap();
    assert_eq!(ps.len(), 2);
    let protect = ps.iter().find(|p| p["id"] == 1).unwrap();
    assert_eq!(protect["sa_slot"], 1, "the outbound SA of reqid 5 is bound");
    assert_eq!(ps.iter().find(|p| p["id"] == 2).unwrap()["dport"], serde_json::json!([500, 500]));

    let stats = ok_json(&db, &["stats"]);
    assert_eq!((stats["sas"].as_u64(), stats["policies"].as_u64()), (Some(2), Some(2)));
    assert_eq!(ok_json(&db, &["events"]), serde_json::json!([]));

    ok_json(&db, &["sa", "del", "--spi", "0x2000", "--dir", "out"]);
    one_line_error(
        &db,
        &["sa", "del", "--spi", "0x2000", "--dir", "out"],
        1,
        "no SA with SPI 0x00002000 out",
    );
    assert_eq!(ok_json(&db, &["policy", "list"])[0]["sa_slot"], serde_json::Value::Null);
    ok_json(&db, &["policy", "del", "--id", "2"]);
    one_line_error(&db, &["policy", "del", "--id", "2"], 1, "no policy with id 2");
    assert_eq!(ok_json(&db, &["policy", "flush"])["deleted"], 1);
    assert_eq!(ok_json(&db, &["sa", "flush"])["deleted"], 1);
    assert_eq!(ok_json(&db, &["sa", "list"]), serde_json::json!([]));
}

#[test]
fn bad_arguments_name_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8"]);
    let sa = |extra: &[&str]| {
        let mut v =
            vec!["sa", "add", "--spi", "7", "--dir", "in", "--src", "198.18.0.2", "--dst", "198.18.0.1"];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, code: i32, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        one_line_error(&db, &refs, code, needle);
    };
    run(
        sa(&["--enc", "aes128gcm16", "--enc-key", "0011"]),
        2,
        "--enc-key: 2 bytes given, 20 expected (key + 4-byte salt)",
    );
    run(sa(&["--enc", "aes128gcm16", "--enc-key", "zz"]), 2, "--enc-key: not hexadecimal");
    run(
        sa(&["--enc", "aes128gcm16", "--enc-key", GCM_KEY, "--integ", "sha1"]),
        2,
        "--integ: AES-GCM authenticates itself",
    );
    run(
        sa(&["--enc", "aes128", "--enc-key", &"00".repeat(16)]),
        2,
        "--integ: AES-CBC and NULL need an integrity algorithm",
    );
    run(
        sa(&["--enc", "aes128", "--enc-key", &"00".repeat(16), "--integ", "sha1", "--integ-key", "00"]),
        2,
        "--integ-key: 1 bytes given, 20 expected",
    );
    run(sa(&["--enc", "aes128gcm16", "--enc-key", GCM_KEY, "--encap-sport", "4500"]), 2, "--encap-dport");
    run(
        sa(&["--enc", "aes128gcm16", "--enc-key", GCM_KEY, "--local-ts", "198.18.1.0/40"]),
        2,
        "--local-ts: prefix length",
    );
    run(sa(&["--enc", "aes128gcm16", "--enc-key", GCM_KEY, "--replay-window", "5000"]), 1, "replay_window");
    run(sa(&["--enc", "des", "--enc-key", GCM_KEY]), 2, "--enc");
    run(
        vec!["sa".into(), "del".into(), "--spi".into(), "0xZZ".into(), "--dir".into(), "in".into()],
        2,
        "--spi",
    );
    run(
        vec![
            "policy".into(),
            "add".into(),
            "--id".into(),
            "1".into(),
            "--dir".into(),
            "out".into(),
            "--src".into(),
            "198.18.0.0/16".into(),
            "--dst".into(),
            "2001:db8::/32".into(),
            "--action".into(),
            "bypass".into(),
        ],
        2,
        "--dst: --src and --dst are of different address families",
    );
    run(
        vec![
            "policy".into(),
            "add".into(),
            "--id".into(),
            "1".into(),
            "--dir".into(),
            "out".into(),
            "--src".into(),
            "198.18.0.0/16".into(),
            "--dst".into(),
            "198.19.0.0/16".into(),
            "--action".into(),
            "protect".into(),
        ],
        2,
        "--reqid",
    );
    run(
        vec![
            "policy".into(),
            "add".into(),
            "--id".into(),
            "1".into(),
            "--dir".into(),
            "out".into(),
            "--src".into(),
            "198.18.0.0/16".into(),
            "--dst".into(),
            "198.19.0.0/16".into(),
            "--action".into(),
            "bypass".into(),
            "--dport".into(),
            "9-1".into(),
        ],
        2,
        "--dport: range ends before it starts",
    );
    // No region.
    let o = espctl(&dir.path().join("missing"), &["sa", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("open failed"));
}

/// AES-192: `aes192gcm16` takes 24 key bytes and the 4-byte salt, `aes192` (CBC) 24; both
/// are listed back under their names; a 16-byte key for AES-192 is refused.
#[test]
fn aes192_sas() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8"]);
    let key24 = "000102030405060708090a0b0c0d0e0f1011121314151617";
    let gcm_key = format!("{key24}a1a2a3a4");
    let integ_key = "ab".repeat(32);
    let sa = |spi: &'static str, extra: &[&str]| -> Vec<String> {
        let mut v =
            vec!["sa", "add", "--spi", spi, "--dir", "out", "--src", "198.18.0.1", "--dst", "198.18.0.2"];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect()
    };
    let run_ok = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_json(&db, &refs)
    };
    run_ok(sa("0x1920", &["--enc", "aes192gcm16", "--enc-key", &gcm_key]));
    run_ok(sa(
        "0x1921",
        &["--enc", "aes192", "--enc-key", key24, "--integ", "sha256", "--integ-key", &integ_key],
    ));
    let sas = ok_json(&db, &["sa", "list"]);
    let names: Vec<(&str, &str)> = sas
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["spi"].as_str().unwrap(), s["enc"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![("0x00001920", "aes192gcm16"), ("0x00001921", "aes192")]);
    let short = sa("0x1922", &["--enc", "aes192", "--enc-key", &"00".repeat(16)]);
    let refs: Vec<&str> = short.iter().map(String::as_str).collect();
    one_line_error(&db, &refs, 2, "--enc-key: 16 bytes given, 24 expected");
}
