//! Signature authentication (RFC 2409 §5.1, RFC 4754) between two engines
//! over the in-memory network: RSA, ECDSA P-256 and P-384, Main and
//! Aggressive Mode, either side initiating, and the refusals, each with its
//! counter. Certificates are made by `openssl` when the tests run.

mod common;

use common::certs::{Ca, KeyKind, Leaf, Validity};
use common::*;
use ike::msgs::{Message, Payload, DEFAULT_MAX_MESSAGE_LEN};
use ike::pki::{CertError, Certificate, TrustStore};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

const SAN_A: &str = "DNS:a.test,email:a@test,IP:192.0.2.1";
const SAN_B: &str = "DNS:b.test,email:b@test,IP:192.0.2.2";

/// One root CA of a key kind and the two gateways' certificates.
struct World {
    _dir: tempfile::TempDir,
    root: Ca,
    a: Leaf,
    b: Leaf,
}

fn make_world(kind: KeyKind) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Ca::root(dir.path(), "root", kind);
    let a = root.leaf("a", kind, SAN_A, Validity::Current);
    let b = root.leaf("b", kind, SAN_B, Validity::Current);
    World { _dir: dir, root, a, b }
}

fn world(kind: KeyKind) -> &'static World {
    static RSA: OnceLock<World> = OnceLock::new();
    static P256: OnceLock<World> = OnceLock::new();
    static P384: OnceLock<World> = OnceLock::new();
    let cell = match kind {
        KeyKind::Rsa2048 => &RSA,
        KeyKind::P256 => &P256,
        KeyKind::P384 => &P384,
    };
    cell.get_or_init(|| make_world(kind))
}

/// P-256 certificates for the refusals: another root, an intermediate, and
/// A's certificate in every wrong way.
struct Refusals {
    _dir: tempfile::TempDir,
    other: Leaf,
    via_intermediate: Leaf,
    intermediate: Certificate,
    expired: Leaf,
    future: Leaf,
    revoked: Leaf,
    crl: ike::pki::Crl,
}

fn refusals() -> &'static Refusals {
    static R: OnceLock<Refusals> = OnceLock::new();
    R.get_or_init(|| {
        let w = world(KeyKind::P256);
        let dir = tempfile::tempdir().expect("tempdir");
        let other_root = Ca::root(dir.path(), "other-root", KeyKind::P256);
        let other = other_root.leaf("a-other", KeyKind::P256, SAN_A, Validity::Current);
        let inter = w.root.intermediate(dir.path(), "intermediate", KeyKind::P256);
        let via_intermediate = inter.leaf("a-inter", KeyKind::P256, SAN_A, Validity::Current);
        let expired = w.root.leaf("a-expired", KeyKind::P256, SAN_A, Validity::Expired);
        let future = w.root.leaf("a-future", KeyKind::P256, SAN_A, Validity::NotYetValid);
        let revoked = w.root.leaf("a-revoked", KeyKind::P256, SAN_A, Validity::Current);
        w.root.revoke(revoked.pem_path());
        let crl = w.root.crl();
        Refusals {
            _dir: dir,
            other,
            via_intermediate,
            intermediate: inter.cert.clone(),
            expired,
            future,
            revoked,
            crl,
        }
    })
}

/// Which identity each side uses: every ID type a certificate can hold.
fn identities(kind: KeyKind, w: &World) -> (Identity, Identity) {
    match kind {
        KeyKind::Rsa2048 => (Identity::Fqdn("a.test".into()), Identity::Fqdn("b.test".into())),
        KeyKind::P256 => (
            Identity::DistinguishedName(w.a.cert.subject_der()),
            Identity::DistinguishedName(w.b.cert.subject_der()),
        ),
        KeyKind::P384 => (Identity::UserFqdn("a@test".into()), Identity::Address(B)),
    }
}

fn trust(root: &Ca) -> TrustStore {
    TrustStore { authorities: vec![root.cert.clone()], ..TrustStore::default() }
}

fn signature_auth(
    chain: Vec<Certificate>,
    leaf: &Leaf,
    trust: TrustStore,
    send_cert: SendCert,
) -> AuthMethod {
    AuthMethod::PublicKey(Arc::new(PublicKeyAuth {
        certificates: chain,
        private_key: leaf.key.clone(),
        trust,
        send_cert,
        send_certreq: true,
    }))
}

fn params_for(kind: KeyKind, mode: Phase1Mode, i: usize) -> Params {
    let mut p = params(i, mode, DhGroup::Ecp256);
    // RFC 4754: ECDSA-384 goes with SHA-384; the hash signed is the PRF's output.
    p.ike.hash = if kind == KeyKind::P384 { HashAlgorithm::Sha384 } else { HashAlgorithm::Sha256 };
    p
}

/// A's and B's configurations for `kind`, each trusting the root.
fn configs(kind: KeyKind, p: &Params) -> (PeerConfig, PeerConfig) {
    let w = world(kind);
    let (id_a, id_b) = identities(kind, w);
    let mut a = peer(A, B, p, b"unused");
    a.auth = signature_auth(vec![w.a.cert.clone()], &w.a, trust(&w.root), SendCert::IfAsked);
    (a.local_id, a.remote_id) = (id_a.clone(), id_b.clone());
    let mut b = peer(B, A, p, b"unused");
    b.auth = signature_auth(vec![w.b.cert.clone()], &w.b, trust(&w.root), SendCert::IfAsked);
    (b.local_id, b.remote_id) = (id_b, id_a);
    (a, b)
}

fn run(a: PeerConfig, b: PeerConfig, a_initiates: bool, fault: FaultFn) -> Pair {
    let mut pair = Pair::new(engine(vec![a], 1, 0x1000), engine(vec![b], 2, 0x2000));
    pair.fault = fault;
    let now = pair.now;
    pair.a.set_wall_clock(now, SystemTime::now());
    pair.b.set_wall_clock(now, SystemTime::now());
    let initiator = if a_initiates { &mut pair.a } else { &mut pair.b };
    initiator.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    pair
}

#[test]
fn every_method_mode_and_initiator_establishes_with_equal_keys() {
    let mut i = 0;
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::P384] {
        for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
            for a_initiates in [true, false] {
                let p = params_for(kind, mode, i);
                i += 1;
                let (a, b) = configs(kind, &p);
                let pair = run(a, b, a_initiates, Box::new(|_, _| Fault::Deliver));
                check_ok(&pair, &p);
                let ka = pair.a.keylog_ike_sa(established_id(&pair.a_events)).unwrap();
                let kb = pair.b.keylog_ike_sa(established_id(&pair.b_events)).unwrap();
                assert_eq!(*ka.1, *kb.1, "{kind:?} {mode:?} phase-1 keys");
                assert_eq!(pair.a.stats().auth_failed + pair.b.stats().auth_failed, 0);
            }
        }
    }
}

#[test]
fn loss_and_duplication_at_every_step() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let p = params_for(KeyKind::P256, mode, 2);
        let clean = || {
            let (a, b) = configs(KeyKind::P256, &p);
            run(a, b, true, Box::new(|_, _| Fault::Deliver))
        };
        let n = clean().sent;
        for k in 0..n {
            for fault in [Fault::Drop, Fault::Duplicate] {
                let (a, b) = configs(KeyKind::P256, &p);
                let f = fault.clone();
                let pair =
                    run(a, b, true, Box::new(move |i, _| if i == k { f.clone() } else { Fault::Deliver }));
                check_ok(&pair, &p);
            }
        }
    }
}

/// Runs P-256 Main and Aggressive Mode (A initiating) with A's configuration changed by
/// `change_a` and B's by `change_b`; B must refuse A with `reason`, counted.
fn refused_by_b(change_a: impl Fn(&mut PeerConfig), change_b: impl Fn(&mut PeerConfig), reason: CertError) {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let p = params_for(KeyKind::P256, mode, 1);
        let (mut a, mut b) = configs(KeyKind::P256, &p);
        // Every A certificate holds this FQDN (their subjects differ).
        (a.local_id, b.remote_id) = (Identity::Fqdn("a.test".into()), Identity::Fqdn("a.test".into()));
        change_a(&mut a);
        change_b(&mut b);
        let pair = run(a, b, true, Box::new(|_, _| Fault::Deliver));
        assert_eq!(established(&pair.b_events), 0, "{mode:?}");
        assert_eq!(failures(&pair.b_events), vec![Error::Certificate(reason)], "{mode:?}");
        let stats = pair.b.stats();
        let counter = stats.named().into_iter().find(|(n, _, _)| *n == cert_counter(reason)).unwrap().2;
        assert!(counter >= 1, "{mode:?}: {} not counted", cert_counter(reason));
        assert!(stats.discarded_certificate >= 1 && stats.auth_failed >= 1, "{mode:?}");
        assert!(installs(&pair.a_events).is_empty() && installs(&pair.b_events).is_empty());
    }
}

fn cert_counter(reason: CertError) -> &'static str {
    match reason {
        CertError::UntrustedIssuer => "cert-refused-untrusted-issuer",
        CertError::Expired => "cert-refused-expired",
        CertError::NotYetValid => "cert-refused-not-yet-valid",
        CertError::Revoked => "cert-refused-revoked",
        CertError::IdMismatch => "cert-refused-id-mismatch",
        CertError::NoCertificate => "cert-refused-no-certificate",
        CertError::BadSignature => "cert-refused-bad-signature",
        other => panic!("no test uses {other:?}"),
    }
}

/// A presents `leaf` (and `extra` after it), named by the FQDN every A
/// certificate holds (their subjects differ).
fn a_presents(leaf: &'static Leaf, extra: Vec<Certificate>) -> impl Fn(&mut PeerConfig) {
    move |a: &mut PeerConfig| {
        a.local_id = Identity::Fqdn("a.test".into());
        let w = world(KeyKind::P256);
        let chain = [vec![leaf.cert.clone()], extra.clone()].concat();
        a.auth = signature_auth(chain, leaf, trust(&w.root), SendCert::IfAsked);
    }
}

fn unchanged(_: &mut PeerConfig) {}

#[test]
fn a_certificate_of_another_ca_is_refused() {
    refused_by_b(a_presents(&refusals().other, vec![]), unchanged, CertError::UntrustedIssuer);
}

#[test]
fn an_expired_certificate_is_refused() {
    refused_by_b(a_presents(&refusals().expired, vec![]), unchanged, CertError::Expired);
}

#[test]
fn a_certificate_not_yet_valid_is_refused() {
    refused_by_b(a_presents(&refusals().future, vec![]), unchanged, CertError::NotYetValid);
}

#[test]
fn a_certificate_revoked_by_a_crl_is_refused() {
    let with_crl = |b: &mut PeerConfig| {
        let w = world(KeyKind::P256);
        let mut t = trust(&w.root);
        t.crls.push(refusals().crl.clone());
        b.auth = signature_auth(vec![w.b.cert.clone()], &w.b, t, SendCert::IfAsked);
    };
    refused_by_b(a_presents(&refusals().revoked, vec![]), with_crl, CertError::Revoked);
    // The same CRL does not touch A's own certificate.
    let p = params_for(KeyKind::P256, Phase1Mode::Main, 1);
    let (a, mut b) = configs(KeyKind::P256, &p);
    with_crl(&mut b);
    check_ok(&run(a, b, true, Box::new(|_, _| Fault::Deliver)), &p);
}

#[test]
fn an_id_the_certificate_does_not_hold_is_refused() {
    let other_id = |a: &mut PeerConfig| a.local_id = Identity::Fqdn("not-a.test".into());
    let any = |b: &mut PeerConfig| b.remote_id = Identity::Any;
    refused_by_b(other_id, any, CertError::IdMismatch);
}

/// B with no trusted CA: it sends no CERTREQ.
fn trusting_no_ca(b: &mut PeerConfig) {
    let w = world(KeyKind::P256);
    b.auth = signature_auth(vec![w.b.cert.clone()], &w.b, TrustStore::default(), SendCert::IfAsked);
}

#[test]
fn without_certreq_if_asked_sends_no_certificate_and_needs_a_configured_one() {
    // B sends no CERTREQ, so A (send_cert = ifasked) sends no CERT: as
    // strongSwan, B then needs A's certificate configured.
    refused_by_b(unchanged, trusting_no_ca, CertError::NoCertificate);
    let p = params_for(KeyKind::P256, Phase1Mode::Main, 1);
    let (a, mut b) = configs(KeyKind::P256, &p);
    let w = world(KeyKind::P256);
    let t = TrustStore { peer_certificates: vec![w.a.cert.clone()], ..TrustStore::default() };
    b.auth = signature_auth(vec![w.b.cert.clone()], &w.b, t, SendCert::IfAsked);
    check_ok(&run(a, b, true, Box::new(|_, _| Fault::Deliver)), &p);
}

#[test]
fn send_cert_always_sends_without_certreq() {
    // Unasked, A sends its certificate anyway: B, trusting no CA, now
    // refuses it for its issuer rather than for its absence.
    let always = |a: &mut PeerConfig| {
        let w = world(KeyKind::P256);
        a.auth = signature_auth(vec![w.a.cert.clone()], &w.a, trust(&w.root), SendCert::Always);
    };
    refused_by_b(always, trusting_no_ca, CertError::UntrustedIssuer);
}

#[test]
fn a_chain_through_an_intermediate_is_accepted() {
    let r = refusals();
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        for a_initiates in [true, false] {
            let p = params_for(KeyKind::P256, mode, 1);
            let (mut a, mut b) = configs(KeyKind::P256, &p);
            a_presents(&r.via_intermediate, vec![r.intermediate.clone()])(&mut a);
            b.remote_id = Identity::Fqdn("a.test".into());
            check_ok(&run(a, b, a_initiates, Box::new(|_, _| Fault::Deliver)), &p);
        }
    }
    // Without the intermediate, A's certificate chains to nothing B trusts.
    refused_by_b(a_presents(&r.via_intermediate, vec![]), unchanged, CertError::UntrustedIssuer);
}

#[test]
fn a_tampered_signature_is_refused() {
    // Aggressive Mode message 2 carries SIG_R in the clear: flip its last bit.
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::P384] {
        let p = params_for(kind, Phase1Mode::Aggressive, 1);
        let (a, b) = configs(kind, &p);
        let tamper = |_: usize, t: &Transmit| {
            if t.source.ip() != B {
                return Fault::Deliver;
            }
            let Ok(mut m) = Message::parse(&t.contents, DEFAULT_MAX_MESSAGE_LEN) else {
                return Fault::Deliver;
            };
            let mut hit = false;
            for payload in &mut m.payloads {
                if let Payload::Sig(s) = payload {
                    *s.last_mut().unwrap() ^= 1;
                    hit = true;
                }
            }
            if hit {
                Fault::Replace(m.emit())
            } else {
                Fault::Deliver
            }
        };
        let pair = run(a, b, true, Box::new(tamper));
        assert_eq!(established(&pair.a_events), 0, "{kind:?}");
        assert_eq!(failures(&pair.a_events), vec![Error::Certificate(CertError::BadSignature)], "{kind:?}");
        assert!(pair.a.stats().cert_refused_bad_signature >= 1);
    }
}

#[test]
fn without_a_wall_clock_no_certificate_is_accepted() {
    let p = params_for(KeyKind::P256, Phase1Mode::Main, 1);
    let (a, b) = configs(KeyKind::P256, &p);
    let mut pair = Pair::new(engine(vec![a], 1, 0x1000), engine(vec![b], 2, 0x2000));
    let now = pair.now;
    pair.a.set_wall_clock(now, SystemTime::now());
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.b_events), vec![Error::Certificate(CertError::NoClock)]);
    assert!(pair.b.stats().cert_refused_no_clock >= 1);
}
