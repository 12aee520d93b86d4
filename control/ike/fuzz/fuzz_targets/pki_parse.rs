//! Parse arbitrary bytes as what signature authentication reads from a peer
//! or from configuration: a certificate (a CERT payload's body), PEM or DER
//! certificates, a CRL, a private key. Nothing may panic; a certificate
//! that parses is taken through key extraction, ID matching and path
//! validation (as its own trust anchor).
#![no_main]

use ike::msgs::IdType;
use ike::pki::{load_certificates, validate, Certificate, Crl, TrustStore};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let _ = load_certificates(data);
    let _ = Crl::from_pem_or_der(data);
    let _ = ike::auth::PrivateKey::from_pem_or_der(data);
    if let Ok(c) = Certificate::from_der(data) {
        let _ = c.public_key();
        let _ = c.subject_der();
        for t in [IdType::DER_ASN1_DN, IdType::FQDN, IdType::USER_FQDN, IdType::IPV4_ADDR] {
            let _ = c.matches_id(t, data.get(..16).unwrap_or(data));
        }
        let trust = TrustStore { authorities: vec![c.clone()], ..TrustStore::default() };
        let _ = validate(&c, &[], &trust, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    }
});
