//! X.509 certificates and CRLs for signature authentication: parsing (PEM
//! or DER, with the RustCrypto `x509-cert`/`der` crates — no hand-written
//! ASN.1), chain validation to a configured trusted CA, revocation from
//! CRLs, and matching a peer's ID payload against a certificate.
//!
//! What [`validate`] checks (RFC 5280 §6.1, the parts a gateway needs):
//! - each certificate of the path is within its validity period at `now`;
//! - each signature is sha256/384/512WithRSAEncryption or
//!   ecdsa-with-SHA256/384 and verifies under the issuer's key
//!   (sha1WithRSAEncryption is refused: chosen-prefix SHA-1 collisions make
//!   forged CA signatures practical);
//! - every issuer has basicConstraints with CA:TRUE (RFC 5280 §4.2.1.9: a CA
//!   certificate MUST have it) and, if it has keyUsage, keyCertSign;
//! - the end entity, if it has keyUsage, has digitalSignature;
//! - no certificate of the path is listed on a CRL of its issuer whose
//!   signature verifies under the issuer's key;
//! - the path ends at a configured trusted CA within [`MAX_PATH_LEN`]
//!   certificates.
//!
//! Parsing takes untrusted bytes and never panics; every refusal is a
//! [`CertError`].

use crate::auth::PublicKey;
use crate::msgs::IdType;
use const_oid::db::rfc5912 as oids;
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::time::SystemTime;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use zeroize::Zeroizing;

#[cfg(test)]
mod tests;

/// Most certificates in a path, end entity and trust anchor included.
pub const MAX_PATH_LEN: usize = 5;
/// Largest certificate or CRL accepted (a CERT payload is at most 64 KiB,
/// and messages are bounded far below that).
pub const MAX_DER_LEN: usize = 16 * 1024;
/// Largest CRL accepted (configuration, not the peer, supplies CRLs; a
/// large CA's list runs to megabytes).
pub const MAX_CRL_LEN: usize = 16 * 1024 * 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a certificate, or the authentication resting on it, was refused.
/// Each reason has its `cert-refused-*` counter in the engine's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CertError {
    /// Not DER/PEM X.509 (or CRL), truncated, or too large.
    Malformed,
    /// The peer sent no certificate and none is configured for it.
    NoCertificate,
    /// No path to a configured trusted CA.
    UntrustedIssuer,
    /// A certificate (or CRL) signature did not verify.
    BadCertificateSignature,
    /// A signature or key algorithm we do not accept (SHA-1, small RSA,
    /// other curves), or a key that does not fit the negotiated auth method.
    UnsupportedAlgorithm,
    /// Past notAfter.
    Expired,
    /// Before notBefore.
    NotYetValid,
    /// An issuer without basicConstraints CA:TRUE.
    NotCa,
    /// keyUsage without digitalSignature (end entity) or keyCertSign (CA).
    KeyUsage,
    /// Listed on its issuer's CRL.
    Revoked,
    /// The path is longer than [`MAX_PATH_LEN`].
    PathTooLong,
    /// The peer's ID payload is neither the certificate's subject nor one of
    /// its subjectAltNames.
    IdMismatch,
    /// SIG_I / SIG_R did not verify under the certificate's key.
    BadSignature,
    /// The engine was given no wall-clock time to check validity with.
    NoClock,
}

/// A parsed certificate and the DER it came in.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    cert: x509_cert::Certificate,
}

impl core::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Certificate({})", self.cert.tbs_certificate.subject)
    }
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        if der.len() > MAX_DER_LEN {
            return Err(CertError::Malformed);
        }
        let cert = x509_cert::Certificate::from_der(der).map_err(|_| CertError::Malformed)?;
        Ok(Self { der: der.to_vec(), cert })
    }

    /// The DER encoding (what a CERT payload carries).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject name, DER (what a CERTREQ for this CA carries, and an
    /// ID_DER_ASN1_DN for this certificate).
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.subject.to_der().unwrap_or_default()
    }

    /// The parsed certificate, for reading its fields (`ikectl list-certs`).
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.cert
    }

    /// Is `now` within the validity period? ([`CertError::Expired`] or
    /// [`CertError::NotYetValid`] if not.)
    pub fn valid_at(&self, now: SystemTime) -> Result<(), CertError> {
        self.check_validity(now)
    }

    fn subject(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }

    fn issuer(&self) -> &Name {
        &self.cert.tbs_certificate.issuer
    }

    /// The subject public key, if it is one we accept (RSA of at least
    /// [`MIN_RSA_BITS`], EC P-256 or P-384).
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        let spki =
            self.cert.tbs_certificate.subject_public_key_info.to_der().map_err(|_| CertError::Malformed)?;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(&spki) {
            if k.size() * 8 < MIN_RSA_BITS {
                return Err(CertError::UnsupportedAlgorithm);
            }
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::EcdsaP256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::EcdsaP384(k.into()));
        }
        Err(CertError::UnsupportedAlgorithm)
    }

    fn extension<'a, T: Decode<'a> + const_oid::AssociatedOid>(&'a self) -> Result<Option<T>, CertError> {
        match self.cert.tbs_certificate.get::<T>() {
            Ok(v) => Ok(v.map(|(_, t)| t)),
            Err(_) => Err(CertError::Malformed),
        }
    }

    fn check_validity(&self, now: SystemTime) -> Result<(), CertError> {
        let v = &self.cert.tbs_certificate.validity;
        if now < v.not_before.to_system_time() {
            return Err(CertError::NotYetValid);
        }
        if now > v.not_after.to_system_time() {
            return Err(CertError::Expired);
        }
        Ok(())
    }

    /// RFC 5280 §4.2.1.9 and §4.2.1.3: may this certificate issue others?
    fn check_ca(&self) -> Result<(), CertError> {
        match self.extension::<BasicConstraints>()? {
            Some(bc) if bc.ca => {}
            _ => return Err(CertError::NotCa),
        }
        match self.extension::<KeyUsage>()? {
            Some(ku) if !ku.key_cert_sign() => Err(CertError::KeyUsage),
            _ => Ok(()),
        }
    }

    /// Verifies that `issuer` signed this certificate.
    fn signed_by(&self, issuer: &Certificate) -> Result<(), CertError> {
        let tbs = self.cert.tbs_certificate.to_der().map_err(|_| CertError::Malformed)?;
        verify_signed(
            &tbs,
            &self.cert.signature_algorithm.oid,
            self.cert.signature.as_bytes(),
            &issuer.public_key()?,
        )
    }

    /// RFC 4945 §3.1 (as strongSwan applies it to IKEv1 too): the ID is the
    /// subject DN or one of the subjectAltNames.
    pub fn matches_id(&self, id_type: IdType, data: &[u8]) -> bool {
        if id_type == IdType::DER_ASN1_DN {
            return Name::from_der(data).is_ok_and(|n| n == *self.subject());
        }
        let Ok(Some(san)) = self.extension::<SubjectAltName>() else {
            return false;
        };
        san.0.iter().any(|name| match (id_type, name) {
            (IdType::FQDN, GeneralName::DnsName(d)) => d.as_str().as_bytes().eq_ignore_ascii_case(data),
            (IdType::USER_FQDN, GeneralName::Rfc822Name(m)) => {
                m.as_str().as_bytes().eq_ignore_ascii_case(data)
            }
            (IdType::IPV4_ADDR | IdType::IPV6_ADDR, GeneralName::IpAddress(ip)) => ip.as_bytes() == data,
            _ => false,
        })
    }
}

/// Verifies `signature` over `tbs` under `key` with the algorithm `oid`.
fn verify_signed(
    tbs: &[u8],
    oid: &const_oid::ObjectIdentifier,
    signature: Option<&[u8]>,
    key: &PublicKey,
) -> Result<(), CertError> {
    let sig = signature.ok_or(CertError::Malformed)?;
    let bad = CertError::BadCertificateSignature;
    let ok = match (*oid, key) {
        (oids::SHA_256_WITH_RSA_ENCRYPTION, PublicKey::Rsa(k)) => {
            k.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(tbs), sig).is_ok()
        }
        (oids::SHA_384_WITH_RSA_ENCRYPTION, PublicKey::Rsa(k)) => {
            k.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(tbs), sig).is_ok()
        }
        (oids::SHA_512_WITH_RSA_ENCRYPTION, PublicKey::Rsa(k)) => {
            k.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(tbs), sig).is_ok()
        }
        (oids::ECDSA_WITH_SHA_256 | oids::ECDSA_WITH_SHA_384, PublicKey::EcdsaP256(k)) => {
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad)?;
            k.verify_prehash(&ecdsa_digest(oid, tbs), &s).is_ok()
        }
        (oids::ECDSA_WITH_SHA_256 | oids::ECDSA_WITH_SHA_384, PublicKey::EcdsaP384(k)) => {
            let s = p384::ecdsa::Signature::from_der(sig).map_err(|_| bad)?;
            k.verify_prehash(&ecdsa_digest(oid, tbs), &s).is_ok()
        }
        _ => return Err(CertError::UnsupportedAlgorithm),
    };
    if ok {
        Ok(())
    } else {
        Err(bad)
    }
}

fn ecdsa_digest(oid: &const_oid::ObjectIdentifier, tbs: &[u8]) -> Vec<u8> {
    if *oid == oids::ECDSA_WITH_SHA_384 {
        Sha384::digest(tbs).to_vec()
    } else {
        Sha256::digest(tbs).to_vec()
    }
}

/// A certificate revocation list (RFC 5280 §5).
#[derive(Clone)]
pub struct Crl {
    list: CertificateList,
    tbs: Vec<u8>,
}

impl core::fmt::Debug for Crl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Crl({})", self.list.tbs_cert_list.issuer)
    }
}

impl Crl {
    /// Parses a CRL given as PEM (`X509 CRL`) or DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CertError> {
        let der = pem_or_der(bytes, MAX_CRL_LEN)?;
        let list = CertificateList::from_der(&der).map_err(|_| CertError::Malformed)?;
        let tbs = list.tbs_cert_list.to_der().map_err(|_| CertError::Malformed)?;
        Ok(Self { list, tbs })
    }

    /// The parsed list, for reading its fields (`ikectl list-certs`).
    pub fn list(&self) -> &CertificateList {
        &self.list
    }

    /// Is `cert` on this list, which `issuer` must have signed? A CRL that
    /// is not the issuer's, or whose signature does not verify, says
    /// nothing.
    fn revokes(&self, cert: &Certificate, issuer: &Certificate) -> bool {
        if self.list.tbs_cert_list.issuer != *issuer.subject() {
            return false;
        }
        if matches!(issuer.extension::<KeyUsage>(), Ok(Some(ku)) if !ku.crl_sign()) {
            tracing::warn!(issuer = %issuer.subject(), "CRL issuer lacks keyUsage cRLSign: CRL ignored");
            return false;
        }
        let signed = issuer.public_key().and_then(|k| {
            verify_signed(&self.tbs, &self.list.signature_algorithm.oid, self.list.signature.as_bytes(), &k)
        });
        if signed.is_err() {
            tracing::warn!(issuer = %issuer.subject(), "CRL signature does not verify: CRL ignored");
            return false;
        }
        let serial = &cert.cert.tbs_certificate.serial_number;
        self.list.tbs_cert_list.revoked_certificates.iter().flatten().any(|r| r.serial_number == *serial)
    }
}

/// Whom we trust: CA certificates, their CRLs, and end-entity certificates
/// of peers that send none (used only when the peer's message has no CERT,
/// as strongSwan uses a locally installed peer certificate).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// Trusted CA certificates (trust anchors).
    pub authorities: Vec<Certificate>,
    /// CRLs of those CAs and of intermediates.
    pub crls: Vec<Crl>,
    /// Peer certificates configured locally.
    pub peer_certificates: Vec<Certificate>,
}

/// Validates the peer's end-entity certificate `leaf`, with the
/// intermediates it sent, against `trust` at `now`; returns its key.
pub fn validate(
    leaf: &Certificate,
    intermediates: &[Certificate],
    trust: &TrustStore,
    now: SystemTime,
) -> Result<PublicKey, CertError> {
    leaf.check_validity(now)?;
    if matches!(leaf.extension::<KeyUsage>()?, Some(ku) if !ku.digital_signature()) {
        return Err(CertError::KeyUsage);
    }
    let key = leaf.public_key()?;
    let mut current = leaf;
    for _ in 1..MAX_PATH_LEN {
        match next_issuer(current, intermediates, trust, now)? {
            Issuer::Anchor => return Ok(key),
            Issuer::Intermediate(issuer) => current = issuer,
        }
    }
    Err(CertError::PathTooLong)
}

/// Who issued a certificate of the path.
enum Issuer<'a> {
    /// A configured trusted CA: the path is complete.
    Anchor,
    /// A CA certificate the peer sent: the path goes on from it.
    Intermediate(&'a Certificate),
}

/// Finds the issuer of `current` whose key verifies its signature, a trust
/// anchor first, then an intermediate the peer sent, and checks it (valid
/// at `now`, a CA) and `current`'s revocation on its CRLs.
fn next_issuer<'a>(
    current: &Certificate,
    intermediates: &'a [Certificate],
    trust: &TrustStore,
    now: SystemTime,
) -> Result<Issuer<'a>, CertError> {
    let anchors = trust.authorities.iter().map(|c| (c, None));
    let sent = intermediates.iter().map(|c| (c, Some(c)));
    let mut refusal = CertError::UntrustedIssuer;
    for (candidate, intermediate) in anchors.chain(sent) {
        if candidate.subject() != current.issuer() || candidate == current {
            continue;
        }
        if let Err(e) = current.signed_by(candidate) {
            refusal = e;
            continue;
        }
        candidate.check_validity(now)?;
        candidate.check_ca()?;
        if trust.crls.iter().any(|crl| crl.revokes(current, candidate)) {
            return Err(CertError::Revoked);
        }
        return Ok(intermediate.map_or(Issuer::Anchor, Issuer::Intermediate));
    }
    Err(refusal)
}

/// Are two DER distinguished names the same name? Attribute types must be
/// equal and in the same order; string values are compared without regard
/// to their ASN.1 string type, ASCII case or surrounding blanks (a name
/// written in a configuration file comes with string types of its own).
/// Anything that does not parse matches only itself, byte for byte.
pub fn dn_matches(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Ok(x), Ok(y)) = (Name::from_der(a), Name::from_der(b)) else {
        return false;
    };
    let atvs = |n: &Name| -> Vec<(const_oid::ObjectIdentifier, Vec<u8>)> {
        n.0.iter().flat_map(|rdn| rdn.0.iter()).map(|atv| (atv.oid, attribute_text(&atv.value))).collect()
    };
    atvs(&x) == atvs(&y)
}

/// An attribute value as it compares: the text of a string type, trimmed
/// and in lower case; other values as their DER.
fn attribute_text(value: &der::Any) -> Vec<u8> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    let text = Utf8StringRef::try_from(value)
        .map(|s| s.as_str().to_owned())
        .or_else(|_| PrintableStringRef::try_from(value).map(|s| s.as_str().to_owned()))
        .or_else(|_| Ia5StringRef::try_from(value).map(|s| s.as_str().to_owned()))
        .or_else(|_| TeletexStringRef::try_from(value).map(|s| s.as_str().to_owned()));
    match text {
        Ok(t) => t.trim().to_ascii_lowercase().into_bytes(),
        Err(_) => value.to_der().unwrap_or_default(),
    }
}

/// A locally configured peer certificate (no CERT received): trusted as it
/// is, but still within its validity period and the holder of the ID.
pub fn configured_peer_key(cert: &Certificate, now: SystemTime) -> Result<PublicKey, CertError> {
    cert.check_validity(now)?;
    cert.public_key()
}

/// Reads certificates: PEM (one or more `CERTIFICATE` blocks; other blocks
/// are skipped) or one DER.
pub fn load_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, CertError> {
    if !is_pem(bytes) {
        return Certificate::from_der(bytes).map(|c| vec![c]);
    }
    // Each block is decoded whole (`der::pem::decode_vec`), then parsed as
    // DER: der 0.7's streaming PEM reader, which x509-cert's
    // `load_pem_chain` uses, never returns on a truncated certificate.
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, b"-----BEGIN ") {
        let block = rest.get(start..).unwrap_or_default();
        let end = find(block, b"-----END ").ok_or(CertError::Malformed)? + b"-----END ".len();
        let close = block.get(end..).and_then(|t| find(t, b"-----")).ok_or(CertError::Malformed)?;
        let len = end + close + b"-----".len();
        let (label, der) =
            der::pem::decode_vec(block.get(..len).unwrap_or_default()).map_err(|_| CertError::Malformed)?;
        if label == "CERTIFICATE" {
            out.push(Certificate::from_der(&der)?);
        }
        rest = block.get(len..).unwrap_or_default();
    }
    if out.is_empty() {
        return Err(CertError::Malformed);
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| bytes.get(i..).is_some_and(|s| s.starts_with(b"-----BEGIN ")))
}

/// The bytes of one PEM block, or DER as it is, at most `limit` bytes of
/// input. The bytes are wiped on drop (they may be a private key).
pub(crate) fn pem_or_der(bytes: &[u8], limit: usize) -> Result<Zeroizing<Vec<u8>>, CertError> {
    if bytes.len() > limit {
        return Err(CertError::Malformed);
    }
    if is_pem(bytes) {
        let (_, der) = der::pem::decode_vec(bytes).map_err(|_| CertError::Malformed)?;
        Ok(Zeroizing::new(der))
    } else {
        Ok(Zeroizing::new(bytes.to_vec()))
    }
}
