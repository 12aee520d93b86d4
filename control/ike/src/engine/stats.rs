//! The engine's datagram counters, declared once: the field, the name
//! `ikectl stats` shows, and the help text all come from the list below.
//!
//! Every datagram lands in exactly one of `processed`, `dropped-*`,
//! `failed` or `discarded-*`; the other counters break one of those down
//! (`auth-failed`, `half-open-refused-*`, `cert-refused-*`) or count events
//! (`half-open-evicted`, `quick-modes-refused`, `peer-moved`).

macro_rules! counters {
    ($( $(#[doc = $doc:literal])+ $field:ident => $name:literal, )+) => {
        /// What the engine did with the datagrams it was given (`ikectl stats`).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct EngineStats {
            $( $(#[doc = $doc])+ pub $field: u64, )+
        }

        impl EngineStats {
            /// Every counter as (name, help text, value), in declaration order.
            pub fn named(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$( ($name, concat!($($doc),+).trim_start(), self.$field), )+]
            }
        }
    };
}

counters! {
    /// Datagrams handed to the engine.
    received => "received",
    /// Taken by an exchange (including retransmissions answered).
    processed => "processed",
    /// Not ISAKMP: bad header, length, version, or a missing non-ESP marker.
    dropped_malformed => "dropped-malformed",
    /// Cookies of no IKE SA of ours, and not a first message.
    dropped_unknown_sa => "dropped-unknown-sa",
    /// A first message from an address no connection accepts.
    dropped_no_config => "dropped-no-config",
    /// A first message refused by the half-open limits (flood protection);
    /// the `half-open-refused-*` counters give the reason.
    dropped_half_open_limit => "dropped-half-open-limit",
    /// Of those: the sending address already holds its share
    /// (`max_half_open_per_peer`).
    half_open_refused_per_source => "half-open-refused-per-source",
    /// Of those: for a `%any` connection, the share of `max_half_open` not
    /// reserved for configured peers is full of exchanges past message 3.
    half_open_refused_any => "half-open-refused-any",
    /// Of those: `max_half_open` is full of exchanges past message 3.
    half_open_refused_total => "half-open-refused-total",
    /// Half-open responder IKE SAs that never got message 3 (no proof that
    /// the initiator receives at its address), removed, oldest first, to
    /// admit a new first message when their budget was full.
    half_open_evicted => "half-open-evicted",
    /// A message of a known SA that failed after it authenticated, or a
    /// first message that failed: decoding, proposal, identity, or an
    /// exchange out of place. The exchange ends.
    failed => "failed",
    /// An encrypted Quick Mode or Informational that did not decrypt or
    /// decode, lacked its HASH, or was not encrypted; or a phase-1 message
    /// of a half-open IKE SA that did not decode. Nothing changed.
    discarded_malformed => "discarded-malformed",
    /// A Quick Mode or Informational whose HASH did not verify, or a
    /// phase-1 message of a half-open IKE SA whose HASH_I/HASH_R did not.
    /// Nothing changed.
    discarded_bad_hash => "discarded-bad-hash",
    /// A phase-1 message of a half-open IKE SA that decoded but was
    /// refused (proposal, identity, key exchange, NAT-D): not acted on, as
    /// anyone who knows the cookies can send one; the exchange goes on.
    discarded_refused => "discarded-refused",
    /// An unprotected Informational of a half-open IKE SA: an error notify
    /// in it is kept as the reason reported if the exchange times out, and
    /// ends nothing.
    discarded_unauthenticated_notify => "discarded-unauthenticated-notify",
    /// A Quick Mode message 1 or an Informational whose message id this
    /// IKE SA saw already (a replay).
    discarded_replay => "discarded-replay",
    /// An authenticated Quick Mode message 1 refused because the IKE SA
    /// already has `max_quick_modes_per_sa` unfinished responder exchanges.
    discarded_quick_mode_limit => "discarded-quick-mode-limit",
    /// A phase-1 message of a half-open IKE SA whose signature
    /// authentication was refused (certificate, ID or SIG); the
    /// `cert-refused-*` counters give the reason.
    discarded_certificate => "discarded-certificate",
    /// Of those: a CERT that is not X.509 DER, truncated or too large.
    cert_refused_malformed => "cert-refused-malformed",
    /// Of those: no CERT, and no certificate configured for the peer's ID.
    cert_refused_no_certificate => "cert-refused-no-certificate",
    /// Of those: no path to a trusted CA.
    cert_refused_untrusted_issuer => "cert-refused-untrusted-issuer",
    /// Of those: a certificate or CRL signature that did not verify.
    cert_refused_bad_certificate_signature => "cert-refused-bad-certificate-signature",
    /// Of those: a signature or key algorithm refused (SHA-1, RSA under
    /// 2048 bits, another curve, a key unfit for the agreed method).
    cert_refused_unsupported_algorithm => "cert-refused-unsupported-algorithm",
    /// Of those: a certificate of the path past its notAfter.
    cert_refused_expired => "cert-refused-expired",
    /// Of those: a certificate of the path before its notBefore.
    cert_refused_not_yet_valid => "cert-refused-not-yet-valid",
    /// Of those: an issuer without basicConstraints CA:TRUE.
    cert_refused_not_ca => "cert-refused-not-ca",
    /// Of those: keyUsage without digitalSignature (end entity) or
    /// keyCertSign (CA).
    cert_refused_key_usage => "cert-refused-key-usage",
    /// Of those: a certificate revoked by its issuer's CRL.
    cert_refused_revoked => "cert-refused-revoked",
    /// Of those: a path longer than five certificates.
    cert_refused_path_too_long => "cert-refused-path-too-long",
    /// Of those: the ID payload is neither the certificate's subject nor a
    /// subjectAltName of it.
    cert_refused_id_mismatch => "cert-refused-id-mismatch",
    /// Of those: SIG_I/SIG_R missing or not verifying under the
    /// certificate's key.
    cert_refused_bad_signature => "cert-refused-bad-signature",
    /// Of those: no wall-clock time given (`Engine::set_wall_clock`).
    cert_refused_no_clock => "cert-refused-no-clock",
    /// Messages that did not authenticate (undecryptable, garbage after
    /// decryption, no or a wrong HASH), among `failed` and `discarded-*`.
    auth_failed => "auth-failed",
    /// Quick Modes refused after the fact because the dataplane could not
    /// take the SA (a full SA table).
    quick_modes_refused => "quick-modes-refused",
    /// Authenticated messages of an established IKE SA that came from a new
    /// peer address or port (a NAT's mapping changed): `Event::PeerMoved`.
    peer_moved => "peer-moved",
}

impl EngineStats {
    /// The `cert-refused-*` counter of a reason.
    pub(super) fn cert_refused(&mut self, reason: crate::pki::CertError) -> &mut u64 {
        use crate::pki::CertError as E;
        match reason {
            E::Malformed => &mut self.cert_refused_malformed,
            E::NoCertificate => &mut self.cert_refused_no_certificate,
            E::UntrustedIssuer => &mut self.cert_refused_untrusted_issuer,
            E::BadCertificateSignature => &mut self.cert_refused_bad_certificate_signature,
            E::UnsupportedAlgorithm => &mut self.cert_refused_unsupported_algorithm,
            E::Expired => &mut self.cert_refused_expired,
            E::NotYetValid => &mut self.cert_refused_not_yet_valid,
            E::NotCa => &mut self.cert_refused_not_ca,
            E::KeyUsage => &mut self.cert_refused_key_usage,
            E::Revoked => &mut self.cert_refused_revoked,
            E::PathTooLong => &mut self.cert_refused_path_too_long,
            E::IdMismatch => &mut self.cert_refused_id_mismatch,
            E::BadSignature => &mut self.cert_refused_bad_signature,
            E::NoClock => &mut self.cert_refused_no_clock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EngineStats;

    #[test]
    fn every_counter_is_named_once() {
        let s = EngineStats { auth_failed: 7, ..EngineStats::default() };
        let named = s.named();
        let mut names: Vec<&str> = named.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(named.iter().find(|(n, _, _)| *n == "auth-failed").map(|c| c.2), Some(7));
        assert!(named.iter().all(|(_, help, _)| !help.is_empty() && !help.starts_with(' ')));
        let help = named.iter().find(|(n, _, _)| *n == "dropped-half-open-limit").map(|c| c.1);
        assert_eq!(
            help,
            Some(
                "A first message refused by the half-open limits (flood protection); \
                 the `half-open-refused-*` counters give the reason."
            )
        );
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a counter name is declared twice");
        assert!(n >= 20);
    }
}
