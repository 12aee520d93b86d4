//! Hostile bytes for the parsers; whole-path validation is tested with
//! certificates made by `openssl` in tests/cert_pair.rs.

use super::*;

#[test]
fn garbage_truncated_and_huge_input_is_refused_without_panic() {
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0x30],
        vec![0x30, 0x82, 0xff, 0xff],
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
        vec![0xff; 64],
        vec![0x30; MAX_DER_LEN + 1],
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
        b"-----BEGIN X509 CRL-----\n!!\n".to_vec(),
        // Found by the pki_parse fuzz target: der's PEM reader (what
        // x509-cert's load_pem_chain uses) never returns on a truncated
        // certificate; the PEM blocks are decoded whole instead.
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec(),
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\nAVOg\n-----END CERTIFICATE-----\n"
            .to_vec(),
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERT".to_vec(),
    ];
    for c in &cases {
        assert_eq!(Certificate::from_der(c).err(), Some(CertError::Malformed), "{c:02x?}");
        assert!(load_certificates(c).is_err());
        assert!(Crl::from_pem_or_der(c).is_err());
        assert!(crate::auth::PrivateKey::from_pem_or_der(c).is_err());
    }
}
