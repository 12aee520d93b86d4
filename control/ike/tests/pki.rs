//! Path validation, ID matching and the PEM/DER readers on certificates,
//! CRLs and keys made by `openssl` when the test runs (the pair tests in
//! cert_pair.rs cover the same through the engine).

mod common;

use common::certs::{run_openssl, Ca, KeyKind, Validity};
use ike::auth::{PrivateKey, SignatureAlgorithm};
use ike::msgs::IdType;
use ike::pki::{load_certificates, validate, CertError, Crl, TrustStore};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

const SAN: &str = "DNS:Gw.Example,email:ops@example,IP:192.0.2.7,IP:2001:db8::7";

fn trusting(ca: &Ca) -> TrustStore {
    TrustStore { authorities: vec![ca.cert.clone()], ..TrustStore::default() }
}

#[test]
fn sha1_signed_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root(dir.path(), "root", KeyKind::Rsa2048);
    let sha1 = root.leaf_with("sha1", KeyKind::Rsa2048, SAN, Validity::Current, "ext_leaf", Some("sha1"));
    let sha512 =
        root.leaf_with("sha512", KeyKind::Rsa2048, SAN, Validity::Current, "ext_leaf", Some("sha512"));
    let now = SystemTime::now();
    assert_eq!(validate(&sha1.cert, &[], &trusting(&root), now).err(), Some(CertError::UnsupportedAlgorithm));
    let key = validate(&sha512.cert, &[], &trusting(&root), now).expect("sha512WithRSAEncryption");
    assert_eq!(key.algorithm(), SignatureAlgorithm::Rsa);
}

#[test]
fn issuers_must_be_cas_and_key_usage_must_fit() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root(dir.path(), "root", KeyKind::P384);
    let not_ca = root.intermediate_with(dir.path(), "not-ca", KeyKind::P256, "ext_leaf");
    let under = not_ca.leaf("under", KeyKind::P256, SAN, Validity::Current);
    let now = SystemTime::now();
    assert_eq!(
        validate(&under.cert, std::slice::from_ref(&not_ca.cert), &trusting(&root), now).err(),
        Some(CertError::NotCa)
    );
    let enc = root.leaf_with("enc", KeyKind::P256, SAN, Validity::Current, "ext_leaf_key_encipherment", None);
    assert_eq!(validate(&enc.cert, &[], &trusting(&root), now).err(), Some(CertError::KeyUsage));
    // A P-256 end entity under a P-384 root signing with SHA-384 is fine.
    let ok = root.leaf("ok", KeyKind::P256, SAN, Validity::Current);
    assert_eq!(
        validate(&ok.cert, &[], &trusting(&root), now).unwrap().algorithm(),
        SignatureAlgorithm::EcdsaP256
    );
    // Validity is checked at the time given, not the machine's.
    let later = now + Duration::from_secs(60 * 86_400);
    assert_eq!(validate(&ok.cert, &[], &trusting(&root), later).err(), Some(CertError::Expired));
    let earlier = now - Duration::from_secs(86_400);
    assert_eq!(validate(&ok.cert, &[], &trusting(&root), earlier).err(), Some(CertError::NotYetValid));
}

#[test]
fn a_revoked_intermediate_takes_its_end_entities_with_it_and_foreign_crls_say_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root(dir.path(), "root", KeyKind::P256);
    let other = Ca::root(dir.path(), "other", KeyKind::P256);
    let inter = root.intermediate(dir.path(), "inter", KeyKind::P256);
    let leaf = inter.leaf("leaf", KeyKind::P256, SAN, Validity::Current);
    let now = SystemTime::now();
    let chain = [inter.cert.clone()];
    let mut trust = trusting(&root);
    trust.crls.push(other.crl());
    assert!(validate(&leaf.cert, &chain, &trust, now).is_ok());
    root.revoke(&dir.path().join("inter/ca.pem"));
    // The CRL as PEM and as DER reads the same.
    let pem = root.crl_pem();
    run_openssl(root.dir(), &["crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der"]);
    let der = std::fs::read(root.dir().join("crl.der")).unwrap();
    for crl in [Crl::from_pem_or_der(&pem).unwrap(), Crl::from_pem_or_der(&der).unwrap()] {
        let mut t = trust.clone();
        t.crls.push(crl);
        assert_eq!(validate(&leaf.cert, &chain, &t, now).err(), Some(CertError::Revoked));
    }
    // Without the intermediate there is no path; a wrong "intermediate" is
    // no issuer either.
    assert_eq!(validate(&leaf.cert, &[], &trust, now).err(), Some(CertError::UntrustedIssuer));
    assert_eq!(
        validate(&leaf.cert, std::slice::from_ref(&other.cert), &trust, now).err(),
        Some(CertError::UntrustedIssuer)
    );
}

#[test]
fn ids_match_the_subject_or_a_subject_alt_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root(dir.path(), "root", KeyKind::P256);
    let c = root.leaf("gw", KeyKind::P256, SAN, Validity::Current).cert;
    assert!(c.matches_id(IdType::DER_ASN1_DN, &c.subject_der()));
    assert!(!c.matches_id(IdType::DER_ASN1_DN, &root.cert.subject_der()));
    assert!(!c.matches_id(IdType::DER_ASN1_DN, b"\x30\x03garbage"));
    assert!(c.matches_id(IdType::FQDN, b"gw.example"), "DNS names compare case-insensitively");
    assert!(!c.matches_id(IdType::FQDN, b"gw.example.org"));
    assert!(c.matches_id(IdType::USER_FQDN, b"ops@example"));
    assert!(!c.matches_id(IdType::FQDN, b"ops@example"), "an email is no FQDN");
    assert!(c.matches_id(IdType::IPV4_ADDR, &Ipv4Addr::new(192, 0, 2, 7).octets()));
    assert!(!c.matches_id(IdType::IPV4_ADDR, &Ipv4Addr::new(192, 0, 2, 8).octets()));
    assert!(c.matches_id(IdType::IPV6_ADDR, &"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets()));
    assert!(!c.matches_id(IdType::IPV6_ADDR, &"2001:db8::8".parse::<Ipv6Addr>().unwrap().octets()));
    assert!(!c.matches_id(IdType::KEY_ID, b"gw"));
}

#[test]
fn certificates_and_keys_read_as_pem_or_der_in_every_common_form() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::P384] {
        let root = Ca::root(dir.path(), &format!("root-{kind:?}"), kind);
        let leaf = root.leaf("gw", kind, SAN, Validity::Current);
        let d = root.dir();
        // The certificate as DER, and a PEM bundle of two.
        run_openssl(d, &["x509", "-in", "gw.pem", "-outform", "DER", "-out", "gw.der"]);
        let der = std::fs::read(d.join("gw.der")).unwrap();
        assert_eq!(load_certificates(&der).unwrap(), vec![leaf.cert.clone()]);
        let bundle =
            [std::fs::read(d.join("gw.pem")).unwrap(), std::fs::read(d.join("ca.pem")).unwrap()].concat();
        assert_eq!(load_certificates(&bundle).unwrap(), vec![leaf.cert.clone(), root.cert.clone()]);
        // The key: PKCS#8 PEM (genpkey), PKCS#8 DER, and the traditional
        // PKCS#1 / SEC1 forms.
        let key = leaf.key_path.to_string_lossy().into_owned();
        // (`openssl ec` writes SEC1 by default, `openssl rsa` PKCS#8 unless told.)
        let trad: &[&str] = if kind == KeyKind::Rsa2048 { &["rsa", "-traditional"] } else { &["ec"] };
        run_openssl(d, &["pkey", "-in", &key, "-outform", "DER", "-out", "k8.der"]);
        run_openssl(d, &[trad, &["-in", &key, "-out", "trad.pem"]].concat());
        run_openssl(d, &[trad, &["-in", &key, "-outform", "DER", "-out", "trad.der"]].concat());
        let label = if kind == KeyKind::Rsa2048 { "RSA PRIVATE KEY" } else { "EC PRIVATE KEY" };
        assert!(String::from_utf8_lossy(&std::fs::read(d.join("trad.pem")).unwrap()).contains(label));
        let public = leaf.key.public_key();
        for f in ["k8.der", "trad.pem", "trad.der"] {
            let k = PrivateKey::from_pem_or_der(&std::fs::read(d.join(f)).unwrap()).unwrap();
            assert_eq!(k.public_key(), public, "{kind:?} {f}");
        }
        // Debug names the algorithm and nothing of the key.
        let shown = format!("{:?}", leaf.key);
        assert!(shown.starts_with("PrivateKey(") && shown.len() < 40, "{shown}");
    }
}
