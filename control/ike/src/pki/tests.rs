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

#[test]
fn names_compare_without_regard_to_string_type_or_case() {
    use const_oid::db::rfc4519;
    use der::asn1::{PrintableStringRef, Utf8StringRef};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let atv = |oid, value: der::Any| AttributeTypeAndValue { oid, value };
    let name = |parts: Vec<AttributeTypeAndValue>| -> Vec<u8> {
        let rdns: Vec<RelativeDistinguishedName> = parts
            .into_iter()
            .map(|a| RelativeDistinguishedName::try_from(vec![a]).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        RdnSequence(rdns).to_der().unwrap_or_else(|e| panic!("{e}"))
    };
    let printable = |s: &str| der::Any::from(PrintableStringRef::new(s).unwrap_or_else(|e| panic!("{e}")));
    let utf8 = |s: &str| der::Any::from(Utf8StringRef::new(s).unwrap_or_else(|e| panic!("{e}")));
    let (c, o, cn) = (rfc4519::COUNTRY_NAME, rfc4519::ORGANIZATION_NAME, rfc4519::COMMON_NAME);
    let openssl = name(vec![atv(c, printable("CH")), atv(o, utf8("strongSwan")), atv(cn, utf8("gw-b"))]);
    let configured = name(vec![atv(c, utf8("CH")), atv(o, utf8("STRONGSWAN")), atv(cn, utf8(" gw-b"))]);
    assert!(dn_matches(&openssl, &configured));
    let reordered = name(vec![atv(o, utf8("strongSwan")), atv(c, utf8("CH")), atv(cn, utf8("gw-b"))]);
    assert!(!dn_matches(&openssl, &reordered), "the order of the parts matters");
    let other = name(vec![atv(c, utf8("CH")), atv(o, utf8("strongSwan")), atv(cn, utf8("gw-c"))]);
    assert!(!dn_matches(&openssl, &other));
    let shorter = name(vec![atv(c, utf8("CH")), atv(o, utf8("strongSwan"))]);
    assert!(!dn_matches(&openssl, &shorter));
    assert!(!dn_matches(&openssl, b"\x30\x01"), "garbage matches nothing");
    assert!(dn_matches(b"\x30\x01", b"\x30\x01"), "but itself");
}
