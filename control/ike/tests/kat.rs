//! Known-answer tests of the key schedule against `fixtures/kat.json`, which
//! `fixtures/gen_kat.py` computes independently with Python `cryptography`.

use ike::crypto::{Cipher, DhGroup, DhSecret, HashAlgorithm};
use ike::keys::{derive_phase1, skeyid_psk};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("kat.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_string() };
    hex::decode(s).unwrap()
}

fn pad(mut v: Vec<u8>, n: usize) -> Vec<u8> {
    while v.len() < n {
        v.insert(0, 0);
    }
    v
}

fn hash_of(s: &str) -> HashAlgorithm {
    match s {
        "sha1" => HashAlgorithm::Sha1,
        "sha256" => HashAlgorithm::Sha256,
        "sha384" => HashAlgorithm::Sha384,
        "sha512" => HashAlgorithm::Sha512,
        other => panic!("unknown hash {other}"),
    }
}

fn secret(group: DhGroup, hex_priv: &Value) -> DhSecret {
    let raw = hx(hex_priv);
    let raw = match group {
        DhGroup::Ecp256 => pad(raw, 32),
        _ => raw,
    };
    DhSecret::from_private_bytes(group, &raw).unwrap()
}

#[test]
fn key_schedule_matches_python_cryptography() {
    let doc = load();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let i = &c["inputs"];
        let o = &c["outputs"];
        let hash = hash_of(c["hash"].as_str().unwrap());
        let cipher = Cipher::aes_cbc(c["encryption_key_len"].as_u64().unwrap() as u16 * 8).unwrap();
        let group = DhGroup::from_id(c["group"].as_u64().unwrap() as u16).unwrap();

        // Diffie-Hellman, both directions.
        let xi = secret(group, &i["priv_i"]);
        let xr = secret(group, &i["priv_r"]);
        assert_eq!(xi.public_value(), &hx(&o["gxi"])[..], "{name}: g^xi");
        assert_eq!(xr.public_value(), &hx(&o["gxr"])[..], "{name}: g^xr");
        let gxy = xi.agree(xr.public_value()).unwrap();
        assert_eq!(*gxy, hx(&o["gxy"]), "{name}: g^xy");
        assert_eq!(*xr.agree(xi.public_value()).unwrap(), *gxy);

        let (ni, nr) = (hx(&i["ni_b"]), hx(&i["nr_b"]));
        let cky_i: [u8; 8] = hx(&i["cky_i"]).try_into().unwrap();
        let cky_r: [u8; 8] = hx(&i["cky_r"]).try_into().unwrap();
        let skeyid = skeyid_psk(hash, &hx(&i["psk"]), &ni, &nr);
        assert_eq!(*skeyid, hx(&o["skeyid"]), "{name}: SKEYID");
        let k =
            derive_phase1(hash, cipher, skeyid, &gxy, &cky_i, &cky_r, xi.public_value(), xr.public_value());
        assert_eq!(*k.skeyid_d, hx(&o["skeyid_d"]), "{name}: SKEYID_d");
        assert_eq!(*k.skeyid_a, hx(&o["skeyid_a"]), "{name}: SKEYID_a");
        assert_eq!(*k.skeyid_e, hx(&o["skeyid_e"]), "{name}: SKEYID_e");
        assert_eq!(*k.encryption_key, hx(&o["encryption_key"]), "{name}: Ka");
        assert_eq!(k.initial_iv, hx(&o["iv0"]), "{name}: IV");

        let (gxi, gxr) = (xi.public_value(), xr.public_value());
        let sai = hx(&i["sai_b"]);
        let hi = k.hash_i(gxi, gxr, &cky_i, &cky_r, &sai, &hx(&i["idii_b"]));
        let hr = k.hash_r(gxi, gxr, &cky_i, &cky_r, &sai, &hx(&i["idir_b"]));
        assert_eq!(*hi, hx(&o["hash_i"]), "{name}: HASH_I");
        assert_eq!(*hr, hx(&o["hash_r"]), "{name}: HASH_R");

        // CBC with the first IV, then chaining into the QM IV.
        let mut msg5 = hx(&i["msg5_plaintext"]);
        cipher.encrypt(&k.encryption_key, &k.initial_iv, &mut msg5).unwrap();
        assert_eq!(msg5, hx(&o["msg5_ciphertext"]), "{name}: message 5");
        let last_block = &msg5[msg5.len() - 16..];
        let mid = i["message_id"].as_u64().unwrap() as u32;
        assert_eq!(k.phase2_iv(last_block, mid), hx(&o["qm_iv"]), "{name}: QM IV");

        let rest = hx(&i["qm_rest"]);
        assert_eq!(*k.hash1(mid, &rest), hx(&o["hash1"]), "{name}: HASH(1)");
        assert_eq!(*k.hash2(mid, &ni, &rest), hx(&o["hash2"]), "{name}: HASH(2)");
        assert_eq!(*k.hash3(mid, &ni, &nr), hx(&o["hash3"]), "{name}: HASH(3)");

        let spi = hx(&i["spi"]);
        assert_eq!(
            *k.keymat(None, 3, &spi, &ni, &nr, 96),
            hx(&o["keymat_cbc_sha512"]),
            "{name}: KEYMAT AES-256 + HMAC-SHA-512"
        );
        assert_eq!(
            *k.keymat(None, 3, &spi, &ni, &nr, 36),
            hx(&o["keymat_gcm256"]),
            "{name}: KEYMAT AES-256-GCM + salt"
        );
        let pi = secret(DhGroup::Ecp256, &i["pfs_priv_i"]);
        let pr = secret(DhGroup::Ecp256, &i["pfs_priv_r"]);
        let pfs = pi.agree(pr.public_value()).unwrap();
        assert_eq!(*pfs, hx(&o["pfs_gxy"]), "{name}: PFS g^xy");
        assert_eq!(
            *k.keymat(Some(&pfs), 3, &spi, &ni, &nr, 36),
            hx(&o["keymat_pfs_aes128_sha1"]),
            "{name}: KEYMAT with PFS"
        );
    }
}

/// Regenerates the fixture when Python and `cryptography` are available and
/// checks the committed file is current. Without them it skips (and says so), except
/// under `CI=true`, where the setup script installs them and a skip is a broken install.
#[test]
fn committed_fixture_is_up_to_date() {
    let have = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with `cryptography` is missing under CI=true (scripts/setup.sh installs it)"
        );
        eprintln!("SKIP: python3 with `cryptography` not found");
        return;
    }
    let out = Command::new("python3").arg(fixture_dir().join("gen_kat.py")).arg("-").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read_to_string(fixture_dir().join("kat.json")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "tests/fixtures/kat.json is stale: run tests/fixtures/gen_kat.py"
    );
}
