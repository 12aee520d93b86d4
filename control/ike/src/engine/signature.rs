//! Phase-1 authentication payloads, PSK or signatures (RFC 2409 §5.1).
//!
//! With signatures the flows of `phase1.rs` carry, RFC 2409 §5.1:
//! ```text
//! Main Mode                                  Aggressive Mode
//! HDR, SA                     -->            HDR, SA, KE, Ni, IDii [, CERTREQ]  -->
//!                             <-- HDR, SA    <-- HDR, SA, KE, Nr, IDir, [CERT,] SIG_R [, CERTREQ]
//! HDR, KE, Ni [, CERTREQ]     -->            HDR*, [CERT,] SIG_I                -->
//!                 <-- HDR, KE, Nr [, CERTREQ]
//! HDR*, IDii, [CERT,] SIG_I   -->
//!                 <-- HDR*, IDir, [CERT,] SIG_R
//! ```
//! CERTREQ (encoding 4) names each CA we trust by its DER subject. CERT
//! (encoding 4) carries our certificate, then the intermediates, when the
//! peer sent a CERTREQ or `send_cert` is `Always`. Without a CERT from the
//! peer, a locally configured certificate holding its ID is used, as
//! strongSwan does; with none, authentication fails (`NoCertificate`).

use super::config::{AuthMethod, PeerConfig, PublicKeyAuth, SendCert};
use super::{Engine, Error};
use crate::crypto::{HashAlgorithm, Secret};
use crate::keys::{skeyid_psk, skeyid_signature};
use crate::msgs::{CertPayload, IdType, Payload, PayloadType, RawPayload, CERT_X509_SIGNATURE};
use crate::pki::{self, CertError, Certificate};
use std::time::{Instant, SystemTime};

/// SKEYID for the connection's method (RFC 2409 §5).
pub(super) fn skeyid(auth: &AuthMethod, hash: HashAlgorithm, ni: &[u8], nr: &[u8], gxy: &[u8]) -> Secret {
    match auth {
        AuthMethod::PreSharedKey(psk) => skeyid_psk(hash, psk, ni, nr),
        AuthMethod::PublicKey(_) => skeyid_signature(hash, ni, nr, gxy),
    }
}

/// One CERTREQ per trusted CA (none with PSK or `send_certreq` off).
pub(super) fn certificate_requests(cfg: &PeerConfig) -> Vec<Payload> {
    match &cfg.auth {
        AuthMethod::PreSharedKey(_) => Vec::new(),
        AuthMethod::PublicKey(p) if !p.send_certreq => Vec::new(),
        AuthMethod::PublicKey(p) => p
            .trust
            .authorities
            .iter()
            .map(|ca| Payload::CertReq(CertPayload { encoding: CERT_X509_SIGNATURE, data: ca.subject_der() }))
            .collect(),
    }
}

/// Did the peer's message carry a CERTREQ?
pub(super) fn peer_asked_for_certificate(raws: &[RawPayload<'_>]) -> bool {
    raws.iter().any(|r| r.payload.payload_type() == PayloadType::CERTREQ)
}

impl Engine {
    /// Our proof over `hash` (HASH_I or HASH_R): the HASH payload itself with
    /// PSK; with signatures `[CERT...,] SIG` of it.
    pub(super) fn authentication_payloads(
        &mut self,
        cfg: &PeerConfig,
        hash: &[u8],
        peer_asked: bool,
    ) -> Result<Vec<Payload>, Error> {
        let p = match &cfg.auth {
            AuthMethod::PreSharedKey(_) => return Ok(vec![Payload::Hash(hash.to_vec())]),
            AuthMethod::PublicKey(p) => p,
        };
        let send = match p.send_cert {
            SendCert::Always => true,
            SendCert::IfAsked => peer_asked,
            SendCert::Never => false,
        };
        let mut out: Vec<Payload> = if send {
            p.certificates
                .iter()
                .map(|c| Payload::Cert(CertPayload { encoding: CERT_X509_SIGNATURE, data: c.der().to_vec() }))
                .collect()
        } else {
            Vec::new()
        };
        let sig = p.private_key.sign_hash(hash, &mut *self.rng).map_err(|_| Error::Local("signature"))?;
        out.push(Payload::Sig(sig));
        Ok(out)
    }

    /// The wall-clock time at `now`, from the anchor given to
    /// [`Engine::set_wall_clock`].
    fn wall_time(&self, now: Instant) -> Option<SystemTime> {
        let (at, wall) = self.wall_clock?;
        match now.checked_duration_since(at) {
            Some(d) => wall.checked_add(d),
            None => wall.checked_sub(at.duration_since(now)),
        }
    }

    /// Checks the peer's signature payloads: its certificate (sent, or
    /// configured) validates, holds the ID of `id_body` (the ID payload
    /// body), and its key verifies SIG over `expected` (HASH_I or HASH_R).
    /// With PSK the caller checks HASH instead.
    pub(super) fn check_signature(
        &self,
        now: Instant,
        p: &PublicKeyAuth,
        raws: &[RawPayload<'_>],
        id_body: &[u8],
        expected: &[u8],
    ) -> Result<(), CertError> {
        let (id_type, id_data) = match id_body {
            [t, _, _, _, data @ ..] => (IdType(*t), data),
            _ => return Err(CertError::IdMismatch),
        };
        let signature = raws
            .iter()
            .find_map(|r| match &r.payload {
                Payload::Sig(s) => Some(s.as_slice()),
                _ => None,
            })
            .ok_or(CertError::BadSignature)?;
        let wall = self.wall_time(now).ok_or(CertError::NoClock)?;
        let sent = raws
            .iter()
            .filter_map(|r| match &r.payload {
                Payload::Cert(c) if c.encoding == CERT_X509_SIGNATURE => Some(Certificate::from_der(&c.data)),
                Payload::Cert(_) => Some(Err(CertError::UnsupportedAlgorithm)),
                _ => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = match sent.split_first() {
            Some((leaf, intermediates)) => {
                if !leaf.matches_id(id_type, id_data) {
                    return Err(CertError::IdMismatch);
                }
                pki::validate(leaf, intermediates, &p.trust, wall)?
            }
            None => {
                let cert = p
                    .trust
                    .peer_certificates
                    .iter()
                    .find(|c| c.matches_id(id_type, id_data))
                    .ok_or(CertError::NoCertificate)?;
                pki::configured_peer_key(cert, wall)?
            }
        };
        // RFC 4754 §5 / RFC 2409 App. A: the method was agreed for one key
        // type; a peer key of another type does not authenticate.
        if key.algorithm() != p.private_key.algorithm() {
            return Err(CertError::UnsupportedAlgorithm);
        }
        if key.verify_hash(expected, signature) {
            Ok(())
        } else {
            Err(CertError::BadSignature)
        }
    }
}
