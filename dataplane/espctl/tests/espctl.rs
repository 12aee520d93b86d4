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
    assert!(table.contains("198.18.0.2  198.18.0.1") && table.contains("0x00002000"), "{table}");
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
    run(
        sa(&["--enc", "aes128gcm16", "--enc-key", GCM_KEY, "--replay-window", "5000"]),
        2,
        "--replay-window: 5000 is beyond this database's largest window, 1024",
    );
    run(
        sa(&["--enc", "aes128gcm16", "--enc-key", GCM_KEY, "--replay-window", "16"]),
        2,
        "--replay-window: 16 is below 32",
    );
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

/// `sa add` with every argument given as strings, on a fresh line of defaults.
fn sa_add(spi: &str, dir: &str, extra: &[&str]) -> Vec<String> {
    let (src, dst) = if dir == "in" { ("198.18.0.2", "198.18.0.1") } else { ("198.18.0.1", "198.18.0.2") };
    let mut v = vec!["sa", "add", "--spi", spi, "--dir", dir, "--src", src, "--dst", dst];
    v.extend_from_slice(extra);
    v.iter().map(|s| s.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// strongSwan's proposal keywords: a GCM alias, cipher-integrity pairs and `-esn`, each
/// installed with the key lengths its algorithms take and listed back under its own names.
#[test]
fn strongswan_algorithm_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8"]);
    let key = |n: usize| "5a".repeat(n);
    // SPI, --enc, key bytes, integrity key bytes; listed back as (enc, integ, proposal, esn).
    type Listed = (&'static str, &'static str, &'static str, bool);
    let cases: [(&str, &str, usize, usize, Listed); 6] = [
        ("0x3001", "aes128gcm128", 20, 0, ("aes128gcm16", "-", "aes128gcm16", false)),
        ("0x3002", "aes256gcm16-esn", 36, 0, ("aes256gcm16", "-", "aes256gcm16", true)),
        ("0x3003", "aes128-sha1", 16, 20, ("aes128", "sha1", "aes128-sha1", false)),
        ("0x3004", "aes192-sha256", 24, 32, ("aes192", "sha256", "aes192-sha256", false)),
        ("0x3005", "aes256-sha384", 32, 48, ("aes256", "sha384", "aes256-sha384", false)),
        ("0x3006", "aes256-sha512", 32, 64, ("aes256", "sha512", "aes256-sha512", false)),
    ];
    for (spi, enc, k, ik, _) in &cases {
        let (k, ik) = (key(*k), key(*ik));
        let mut extra = vec!["--enc", enc, "--enc-key", &k];
        if !ik.is_empty() {
            extra.extend(["--integ-key", &ik]);
        }
        ok_json(&db, &strs(&sa_add(spi, "out", &extra)));
    }
    let sas = ok_json(&db, &["sa", "list"]);
    let got: Vec<(&str, &str, &str, &str, bool)> = sas
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let t = |k: &str| s[k].as_str().unwrap();
            (t("spi"), t("enc"), t("integ"), t("proposal"), s["esn"].as_bool().unwrap())
        })
        .collect();
    let want: Vec<(&str, &str, &str, &str, bool)> =
        cases.iter().map(|(spi, _, _, _, (e, i, p, esn))| (&spi[2..], *e, *i, *p, *esn)).collect();
    assert_eq!(got.len(), want.len());
    for ((gs, ge, gi, gp, gesn), (ws, we, wi, wp, wesn)) in got.iter().zip(&want) {
        assert!(gs.ends_with(ws), "{gs} vs {ws}");
        assert_eq!((ge, gi, gp, gesn), (we, wi, wp, wesn), "{gs}");
    }
    // The integrity algorithm named in --enc sets the key length --integ-key must have.
    let short =
        sa_add("0x3007", "out", &["--enc", "aes256-sha384", "--enc-key", &key(32), "--integ-key", &key(32)]);
    one_line_error(&db, &strs(&short), 2, "--integ-key: 32 bytes given, 48 expected");
    let both = sa_add(
        "0x3007",
        "out",
        &["--enc", "aes128-sha1", "--enc-key", &key(16), "--integ", "sha256", "--integ-key", &key(32)],
    );
    one_line_error(&db, &strs(&both), 2, "--integ: differs from the integrity algorithm --enc names");
    let gcm8 = sa_add("0x3007", "out", &["--enc", "aes128gcm8", "--enc-key", &key(20)]);
    one_line_error(&db, &strs(&gcm8), 2, "only AES-GCM with a 16-octet ICV");
    let noesn = sa_add("0x3007", "out", &["--enc", "aes128gcm16-noesn", "--enc-key", &key(20), "--esn"]);
    one_line_error(&db, &strs(&noesn), 2, "--esn: --enc says noesn");
}

/// `--seq` presets the sequence number: listed back as given, and the dataplane's next
/// outbound packet carries the number after it. `--replay-window` is bounded by the
/// database's largest window, and 0 turns the check off.
#[test]
fn preset_sequence_number_and_replay_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8", "--readers", "2", "--replay-max", "256"]);
    let gcm = ["--enc", "aes128gcm16", "--enc-key", GCM_KEY];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v = gcm.to_vec();
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect()
    };
    let out = ok_json(&db, &strs(&sa_add("0x4001", "out", &strs(&with(&["--seq", "4000000000"])))));
    let out_slot = out["slot"].as_u64().unwrap() as u32;
    ok_json(&db, &strs(&sa_add("0x4002", "in", &strs(&with(&["--seq", "1099511627776", "--esn"])))));
    ok_json(&db, &strs(&sa_add("0x4003", "in", &strs(&with(&["--replay-window", "256"])))));
    ok_json(&db, &strs(&sa_add("0x4004", "in", &strs(&with(&["--replay-window", "0"])))));
    let sas = ok_json(&db, &["sa", "list"]);
    let by_spi = |spi: &str| sas.as_array().unwrap().iter().find(|s| s["spi"] == spi).unwrap().clone();
    assert_eq!(by_spi("0x00004001")["seq"], 4_000_000_000u64);
    assert_eq!(by_spi("0x00004002")["seq"], 1u64 << 40);
    assert_eq!(by_spi("0x00004003")["replay_window"], 256);
    assert_eq!(by_spi("0x00004003")["seq"], 0);
    assert_eq!(by_spi("0x00004004")["replay_window"], 0);
    let table = String::from_utf8(espctl(&db, &["sa", "list"]).stdout).unwrap();
    assert!(table.contains(" 4000000000 ") && table.contains(" off "), "{table}");

    // The dataplane continues after the preset number.
    let region = std::sync::Arc::new(sadb::Region::attach(&db).unwrap());
    let reader = region.register_reader(0).unwrap();
    assert_eq!(reader.reserve_seq(out_slot, 1, false), Ok(4_000_000_001));
    drop(reader);

    one_line_error(
        &db,
        &strs(&sa_add("0x4005", "out", &strs(&with(&["--seq", "4294967296"])))),
        2,
        "--seq: 4294967296 is beyond 2^32-1; a 64-bit sequence number needs --esn",
    );
    one_line_error(
        &db,
        &strs(&sa_add("0x4005", "in", &strs(&with(&["--replay-window", "320"])))),
        2,
        "--replay-window: 320 is beyond this database's largest window, 256",
    );
    one_line_error(&db, &strs(&sa_add("0x4005", "out", &strs(&with(&["--seq=-1"])))), 2, "--seq");
    // The window is the inbound side's: an outbound SA's is not checked.
    ok_json(&db, &strs(&sa_add("0x4006", "out", &strs(&with(&["--replay-window", "16"])))));
}

/// Warnings go to stderr and the SA is installed all the same; SPI 0 is refused.
#[test]
fn reserved_spis_and_mixed_selector_families_warn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8"]);
    let gcm = ["--enc", "aes128gcm16", "--enc-key", GCM_KEY];
    one_line_error(&db, &strs(&sa_add("0", "in", &gcm)), 2, "--spi: 0 is not a valid SPI");
    let warned = |args: &[String]| -> Vec<String> {
        let o = espctl(&db, &strs(args));
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(String::from_utf8(o.stdout).unwrap().starts_with("added SPI"));
        err.lines().map(str::to_owned).collect()
    };
    let w = warned(&sa_add("255", "in", &gcm));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("espctl: warning: --spi 0xff: SPIs 1-255 are reserved by IANA"), "{w:?}");
    assert_eq!(warned(&sa_add("256", "in", &gcm)), Vec::<String>::new());
    assert_eq!(ok_json(&db, &["sa", "list"]).as_array().unwrap().len(), 2);

    let mut mixed = gcm.to_vec();
    mixed.extend(["--local-ts", "198.18.1.0/24", "--remote-ts", "2001:db8:1::/48"]);
    let w = warned(&sa_add("0x5001", "out", &mixed));
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("--local-ts is IPv4 and --remote-ts IPv6"), "{w:?}");
    assert!(w[1].contains("--remote-ts is IPv6 inside an IPv4 tunnel"), "{w:?}");

    let mut trs = gcm.to_vec();
    trs.extend(["--mode", "transport", "--local-ts", "2001:db8::1", "--remote-ts", "2001:db8::2"]);
    let w = warned(&sa_add("0x5002", "out", &trs));
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w.iter().all(|l| l.contains("the dataplane will not use this one")), "{w:?}");
    let mut same = gcm.to_vec();
    same.extend(["--local-ts", "198.18.1.0/24", "--remote-ts", "198.19.0.0/16"]);
    assert_eq!(warned(&sa_add("0x5003", "out", &same)), Vec::<String>::new());
}

/// The offsets at which the words of a line start.
fn word_starts(line: &str) -> Vec<usize> {
    let b = line.as_bytes();
    (0..b.len()).filter(|&i| b[i] != b' ' && (i == 0 || b[i - 1] == b' ')).collect()
}

/// Every row's columns start where the header's do (no cell holds a space).
fn assert_aligned(table: &str) {
    let mut lines = table.lines();
    let header = word_starts(lines.next().unwrap());
    for l in lines {
        assert_eq!(word_starts(l), header, "row {l:?} of\n{table}");
    }
}

/// `policy list` and `sa list` line their columns up, whatever the length of the addresses:
/// an IPv6 selector of full length beside short IPv4 ones.
#[test]
fn tables_line_up_with_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8"]);
    let pol = |id: &str, src: &str, dst: &str, extra: &[&str]| {
        let mut v = vec!["policy", "add", "--id", id, "--dir", "out", "--src", src, "--dst", dst];
        v.extend_from_slice(extra);
        ok_json(&db, &v);
    };
    pol("1", "10.0.0.0/8", "10.1.0.0/16", &["--action", "bypass"]);
    pol(
        "2",
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff/128",
        "2001:db8::/32",
        &["--action", "protect", "--reqid", "7", "--proto", "udp", "--dport", "500-4500"],
    );
    pol("300", "0.0.0.0/0", "198.51.100.7", &["--action", "discard", "--priority", "5"]);
    let table = String::from_utf8(espctl(&db, &["policy", "list"]).stdout).unwrap();
    assert_eq!(table.lines().count(), 4, "{table}");
    assert_aligned(&table);
    let row2 = table.lines().find(|l| l.starts_with("2 ")).unwrap();
    let cells: Vec<&str> = row2.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "2",
            "out",
            "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff/128",
            "2001:db8::/32",
            "udp",
            "any",
            "500-4500",
            "protect",
            "7",
            "1000",
            "-",
            "0"
        ]
    );

    let gcm = ["--enc", "aes128gcm16", "--enc-key", GCM_KEY];
    let mut v6 = vec![
        "sa",
        "add",
        "--spi",
        "0x6001",
        "--dir",
        "out",
        "--src",
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1",
        "--dst",
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:2",
        "--local-ts",
        "2001:db8:1::/48",
        "--remote-ts",
        "2001:db8:2::/48",
        "--soft-packets",
        "1000",
        "--hard-packets",
        "2000",
        "--backend",
        "rust",
        "--esn",
        "--reqid",
        "7",
    ];
    v6.extend(gcm);
    ok_json(&db, &v6);
    let mut v4 = vec!["--soft-bytes", "5000"];
    v4.extend(gcm);
    let v4 = sa_add("0x6002", "in", &v4);
    ok_json(&db, &strs(&v4));
    let table = String::from_utf8(espctl(&db, &["sa", "list"]).stdout).unwrap();
    assert_aligned(&table);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(
        (col("local-ts"), col("remote-ts"), col("esn"), col("backend"), col("packets-soft/hard")),
        ("2001:db8:1::/48", "2001:db8:2::/48", "esn", "rust", "1000/2000")
    );
    let sas = ok_json(&db, &["sa", "list"]);
    let (a, b) = (&sas[0], &sas[1]);
    assert_eq!(
        (&a["local_ts"], &a["remote_ts"], &a["backend"], &a["esn"], &a["soft_packets"], &a["hard_packets"]),
        (
            &serde_json::json!("2001:db8:1::/48"),
            &serde_json::json!("2001:db8:2::/48"),
            &serde_json::json!("rust"),
            &serde_json::json!(true),
            &serde_json::json!(1000),
            &serde_json::json!(2000)
        )
    );
    assert_eq!(
        (&b["local_ts"], &b["soft_bytes"], &b["hard_bytes"]),
        (&serde_json::Value::Null, &serde_json::json!(5000), &serde_json::json!(0))
    );
}

/// Where the child process of `stats_after_the_dataplane_died` registers its reader.
const READER_CHILD_DB: &str = "ESPCTL_TEST_READER_CHILD_DB";

/// Not a test of its own: run as a child process by `stats_after_the_dataplane_died`, it
/// registers a reader, counts, and exits without deregistering, as a killed espd would.
#[test]
fn reader_child() {
    let Some(db) = std::env::var_os(READER_CHILD_DB) else { return };
    let region = std::sync::Arc::new(sadb::Region::attach(db).unwrap());
    let reader = region.register_reader(3).unwrap();
    reader.count(sadb::counters::traffic(sadb::counters::Traffic::RxPackets), 11);
    reader.quiescent();
    std::mem::forget(reader);
    std::process::exit(0);
}

fn rx_packets(stats: &serde_json::Value) -> Option<u64> {
    stats["total"]["rx-packets"].as_u64()
}

/// `stats` after espd stopped: the counters its lcores last wrote are still shown, with a
/// note that espd is not running; while a reader's process lives, no note.
#[test]
fn stats_after_the_dataplane_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8", "--readers", "4"]);
    let text = |db: &Path| String::from_utf8(espctl(db, &["stats"]).stdout).unwrap();
    let s = ok_json(&db, &["stats"]);
    assert_eq!((s["espd_running"].as_bool(), rx_packets(&s)), (Some(false), None));
    assert!(text(&db).starts_with("espd not running; no counters written yet\n"));

    let region = std::sync::Arc::new(sadb::Region::attach(&db).unwrap());
    let reader = region.register_reader(1).unwrap();
    reader.count(sadb::counters::traffic(sadb::counters::Traffic::RxPackets), 42);
    reader.count(sadb::counters::gw_drop(sadb::counters::GwDrop::NoRoute), 3);
    reader.quiescent();
    // Running (this process is the dataplane): counters live, no note.
    let s = ok_json(&db, &["stats"]);
    assert_eq!((s["espd_running"].as_bool(), rx_packets(&s)), (Some(true), Some(42)));
    assert_eq!(s["lcores"][0]["state"], "running");
    assert!(text(&db).starts_with("SAs: 0"), "{}", text(&db));
    // Stopped cleanly: the reader deregistered, its counters stay.
    drop(reader);
    let s = ok_json(&db, &["stats"]);
    assert_eq!((s["espd_running"].as_bool(), rx_packets(&s)), (Some(false), Some(42)));
    assert_eq!(s["total"]["drop-no-route"], 3);
    assert_eq!(s["note"], "espd not running; counters as last written");
    assert_eq!(
        (s["lcores"][0]["lcore"].as_u64(), s["lcores"][0]["state"].as_str()),
        (Some(1), Some("exited"))
    );
    let t = text(&db);
    assert!(t.starts_with("espd not running; counters as last written\n"), "{t}");
    let rx = t.lines().find(|l| l.starts_with("rx-packets ")).unwrap_or_else(|| panic!("{t}"));
    assert_eq!(rx.split_whitespace().collect::<Vec<_>>(), ["rx-packets", "42"]);
}

/// `stats` after the dataplane died without deregistering: its reader slot still says
/// registered, but its process is gone.
#[test]
fn stats_after_the_dataplane_died() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sadb");
    ok_json(&db, &["create", "--sas", "64", "--policies", "8", "--readers", "4"]);
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reader_child", "--test-threads", "1"])
        .env(READER_CHILD_DB, &db)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let s = ok_json(&db, &["stats"]);
    assert_eq!((s["espd_running"].as_bool(), rx_packets(&s)), (Some(false), Some(11)));
    assert_eq!((s["lcores"][0]["lcore"].as_u64(), s["lcores"][0]["state"].as_str()), (Some(3), Some("died")));
    let t = String::from_utf8(espctl(&db, &["stats"]).stdout).unwrap();
    assert!(t.starts_with("espd not running; counters as last written\n") && t.contains("died"), "{t}");
}
