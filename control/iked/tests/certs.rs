//! Certificate authentication between two SA managers built from
//! configuration files, in memory and in virtual time: each gateway has a
//! swanctl directory with certificates and keys made by `openssl` when the
//! test runs (no binary fixtures), its own SA database, and `auth =
//! "pubkey"`. RSA and ECDSA bring up an IKE SA and a child; `list-certs`
//! shows what was loaded; `load-all` with a CRL revoking the peer makes its
//! next handshake fail (counted as revoked) while the established SAs stay;
//! `iked --check-config` reports certificate errors. The last test runs two
//! iked processes on loopback addresses and drives them with ikectl.
//!
//! `openssl` is required: without it these tests fail, they are never
//! skipped.

#[path = "../../ike/tests/common/certs.rs"]
#[allow(dead_code)]
mod certs;
#[path = "common/sim.rs"]
#[allow(dead_code)]
mod sim;

use certs::{Ca, KeyKind, Leaf, Validity};
use iked::config;
use iked::manager::Manager;
use iked::sadb_writer::SadbWriter;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const LATENCY: Duration = Duration::from_millis(10);

/// One gateway's files: its directory holds `iked.toml`, `sadb` and the
/// swanctl directory `swanctl/`.
struct Gateway {
    dir: PathBuf,
    leaf: Leaf,
}

impl Gateway {
    fn config_path(&self) -> PathBuf {
        self.dir.join("iked.toml")
    }

    fn swanctl(&self, rel: &str) -> PathBuf {
        self.dir.join("swanctl").join(rel)
    }
}

/// The CA, two gateways `gw-a` (198.18.0.1) and `gw-b` (198.18.0.2), each
/// configured for the other.
struct World {
    _tmp: tempfile::TempDir,
    ca: Ca,
    a: Gateway,
    b: Gateway,
}

fn copy(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

fn world(kind: KeyKind, proposals: &str) -> World {
    world_at(kind, proposals, (A, B))
}

/// [`world`] with the gateways at `addrs`.
fn world_at(kind: KeyKind, proposals: &str, addrs: (IpAddr, IpAddr)) -> World {
    let (a_ip, b_ip) = addrs;
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = Ca::root(&tmp.path().join("pki"), "ca", kind);
    let gateway = |name: &str, ip: IpAddr, peer: IpAddr, peer_name: &str, local_ts: &str, remote_ts: &str| {
        let san = format!("DNS:{name}.example,IP:{ip}");
        let leaf = ca.leaf(name, kind, &san, Validity::Current);
        let dir = tmp.path().join(name);
        let g = Gateway { dir, leaf };
        copy(g.leaf.pem_path(), &g.swanctl(&format!("x509/{name}.pem")));
        copy(&g.leaf.key_path, &g.swanctl(&format!("private/{name}.key")));
        copy(&ca.dir().join("ca.pem"), &g.swanctl("x509ca/ca.pem"));
        std::fs::create_dir_all(g.swanctl("x509crl")).unwrap_or_else(|e| panic!("{e}"));
        let text = format!(
            r#"
[daemon]
sadb = "{dir}/sadb"
control_socket = "{dir}/iked.sock"
listen = ["{ip}"]
swanctl_dir = "{dir}/swanctl"

[connections.gw]
version = 1
local_addrs = "{ip}"
remote_addrs = "{peer}"
proposals = "{proposals}"
local.auth = "pubkey"
local.certs = ["{name}.pem"]
remote.auth = "pubkey"
remote.id = "O=Test, CN={peer_name}"
[connections.gw.children.net]
local_ts = "{local_ts}"
remote_ts = "{remote_ts}"
esp_proposals = "aes128gcm16"
"#,
            dir = g.dir.display(),
        );
        std::fs::write(g.config_path(), text).unwrap_or_else(|e| panic!("{e}"));
        g
    };
    let a = gateway("gw-a", a_ip, b_ip, "gw-b", "10.1.0.0/16", "10.2.0.0/16");
    let b = gateway("gw-b", b_ip, a_ip, "gw-a", "10.2.0.0/16", "10.1.0.0/16");
    World { _tmp: tmp, ca, a, b }
}

fn load(g: &Gateway) -> config::Config {
    config::load(&g.config_path()).unwrap_or_else(|e| panic!("{e}"))
}

/// The two managers and the wire between them.
struct Pair {
    a: Manager,
    b: Manager,
    now: Instant,
    wire: Vec<(Instant, ike::engine::Transmit)>,
}

impl Pair {
    fn new(w: &World) -> Self {
        Self::with_clock_of_a(w, SystemTime::now())
    }

    /// A's wall clock says `wall_a` (B's is right).
    fn with_clock_of_a(w: &World, wall_a: SystemTime) -> Self {
        let now = Instant::now();
        let manager = |g: &Gateway, seed: u64, wall: SystemTime| {
            let cfg = Arc::new(load(g));
            let kernel = SadbWriter::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
            let mut m = Manager::new(cfg, kernel, None, sim::randomness(seed));
            // Certificates are checked against the real date (they were
            // made now).
            m.set_wall_clock(now, wall);
            m.start(now);
            m
        };
        Self { a: manager(&w.a, 1, wall_a), b: manager(&w.b, 2, SystemTime::now()), now, wire: Vec::new() }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.a.commit();
            self.b.commit();
            while let Some(t) = self.a.poll_transmit() {
                self.wire.push((self.now + LATENCY, t));
            }
            while let Some(t) = self.b.poll_transmit() {
                self.wire.push((self.now + LATENCY, t));
            }
            let deadlines = [
                self.wire.iter().map(|(t, _)| *t).min(),
                self.a.poll_timeout().filter(|t| *t > self.now),
                self.b.poll_timeout().filter(|t| *t > self.now),
            ];
            let Some(next) = sim::next_moment(until, deadlines) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            for t in sim::take_due(&mut self.wire, now) {
                let to = if t.destination.ip() == A { &mut self.a } else { &mut self.b };
                to.handle_datagram(now, t.destination, t.source, &t.contents);
            }
            for m in [&mut self.a, &mut self.b] {
                if m.poll_timeout().is_some_and(|t| t <= now) {
                    m.tick(now);
                }
            }
        }
    }

    /// (state, number of child SAs) of each IKE SA `m` holds.
    fn sas(m: &Manager, now: Instant) -> Sas {
        m.list_sas(now, sim::WALL).into_iter().map(|s| (s.state, s.child_sas.len())).collect()
    }

    /// The non-zero counters whose names start with `prefix`.
    fn counts_of(m: &Manager, prefix: &str) -> Vec<(String, u64)> {
        m.counts().ike_datagrams.into_iter().filter(|(k, v)| k.starts_with(prefix) && *v > 0).collect()
    }

    fn counter(m: &Manager, name: &str) -> u64 {
        m.counts().ike_datagrams.get(name).copied().unwrap_or_else(|| panic!("no counter {name}"))
    }
}

/// (state, child SA count) of each IKE SA of one side.
type Sas = Vec<(String, usize)>;

fn established(pair: &Pair) -> (Sas, Sas) {
    (Pair::sas(&pair.a, pair.now), Pair::sas(&pair.b, pair.now))
}

fn up() -> Sas {
    vec![("ESTABLISHED".to_owned(), 1)]
}

fn bring_up(kind: KeyKind, proposals: &str) -> (World, Pair) {
    let w = world(kind, proposals);
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.a.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    (w, pair)
}

#[test]
fn rsa_certificates_bring_up_an_ike_sa_and_a_child() {
    let (w, pair) = bring_up(KeyKind::Rsa2048, "aes128-sha256-modp2048");
    assert_eq!(established(&pair), (up(), up()));
    let sa = &pair.a.list_sas(pair.now, sim::WALL)[0];
    assert_eq!(sa.local_id, "O=Test, CN=gw-a", "our certificate's subject is our identity");
    assert_eq!(sa.remote_id, "O=Test, CN=gw-b");
    for m in [&pair.a, &pair.b] {
        assert_eq!(Pair::counter(m, "discarded-certificate"), 0);
    }
    // list-conns says so too.
    let daemon = iked::daemon::Daemon::new(w.a.config_path(), load(&w.a), iked::daemon::Detached, None);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"));
    let conns = runtime
        .block_on(iked::ctl::ControlHandler::list_conns(&daemon))
        .unwrap_or_else(|e| panic!("{}", e.message));
    let c = &conns[0];
    assert_eq!((c.local_auth.as_str(), c.local_id.as_str()), ("public key", "O=Test, CN=gw-a"));
    assert_eq!((c.remote_auth.as_str(), c.remote_id.as_str()), ("public key", "O=Test, CN=gw-b"));
}

#[test]
fn ecdsa_certificates_bring_up_an_ike_sa_and_a_child() {
    let (_w, pair) = bring_up(KeyKind::P256, "aes128-sha256-ecp256");
    assert_eq!(established(&pair), (up(), up()));
    let (_w, pair) = bring_up(KeyKind::P384, "aes256-sha384-ecp384");
    assert_eq!(established(&pair), (up(), up()));
}

/// Adds `line` to connection `gw` of `g`'s configuration file.
fn set(g: &Gateway, line: &str) {
    let text = std::fs::read_to_string(g.config_path()).unwrap_or_default();
    std::fs::write(g.config_path(), text.replace("version = 1\n", &format!("version = 1\n{line}\n")))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn aggressive_mode_with_certificates() {
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    set(&w.a, "aggressive = true");
    set(&w.b, "aggressive = true");
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.a.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    assert_eq!(established(&pair), (up(), up()));
}

#[test]
fn send_cert_never_needs_the_peer_certificate_installed() {
    // A never sends its certificate: B finds it in its own x509/.
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    set(&w.a, "send_cert = \"never\"");
    copy(w.a.leaf.pem_path(), &w.b.swanctl("x509/gw-a.pem"));
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.a.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    assert_eq!(established(&pair), (up(), up()));
    // Without it installed, B has no certificate for A.
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    set(&w.a, "send_cert = \"never\"");
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.a.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    let refused = Pair::counts_of(&pair.b, "cert-refused-");
    assert_eq!(refused.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["cert-refused-no-certificate"]);
    // A asking for no certificate (send_certreq = false) gets none from B,
    // whose send_cert waits to be asked.
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    set(&w.a, "send_certreq = false");
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.a.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    let refused = Pair::counts_of(&pair.a, "cert-refused-");
    assert_eq!(refused.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["cert-refused-no-certificate"]);
}

#[test]
fn list_certs_shows_what_was_loaded() {
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    // A CRL of the CA that revokes nothing yet.
    std::fs::write(w.a.swanctl("x509crl/ca.crl"), w.ca.crl_pem()).unwrap_or_else(|e| panic!("{e}"));
    let cfg = load(&w.a);
    let (certs, crls) = iked::daemon::certificate_list(&cfg.credentials);
    assert_eq!(certs.len(), 2);
    let own = &certs[0];
    assert_eq!(own.path, w.a.swanctl("x509/gw-a.pem").display().to_string());
    assert_eq!(own.source, "x509");
    assert_eq!(own.subject, "O=Test, CN=gw-a");
    assert_eq!(own.issuer, "O=Test, CN=ca");
    assert_eq!(own.sans, ["DNS:gw-a.example", "IP:198.18.0.1"]);
    assert_eq!(own.serial, "10:00", "the first serial of the openssl CA");
    let validity = &w.a.leaf.cert.x509().tbs_certificate.validity;
    assert_eq!(own.not_before, validity.not_before.to_date_time().to_string());
    assert_eq!(own.not_after, validity.not_after.to_date_time().to_string());
    assert!(own.not_before.ends_with('Z') && own.not_before.len() == 20, "{}", own.not_before);
    assert_eq!(own.key, "ECDSA P-256");
    assert!(!own.ca);
    assert!(own.has_private_key);
    assert_eq!(own.connections, ["gw"]);
    let ca = &certs[1];
    assert_eq!(ca.path, w.a.swanctl("x509ca/ca.pem").display().to_string());
    assert_eq!(
        (ca.source.as_str(), ca.subject.as_str(), ca.issuer.as_str()),
        ("x509ca", "O=Test, CN=ca", "O=Test, CN=ca")
    );
    assert!(ca.sans.is_empty());
    assert!(ca.ca);
    assert!(!ca.has_private_key);
    assert!(ca.connections.is_empty());
    assert_eq!(ca.key, "ECDSA P-256");
    assert_eq!(crls.len(), 1);
    assert_eq!(crls[0].path, w.a.swanctl("x509crl/ca.crl").display().to_string());
    assert_eq!(crls[0].issuer, "O=Test, CN=ca");
    assert_eq!(crls[0].revoked, 0);
    assert!(crls[0].next_update.is_some());
    assert!(crls[0].this_update.ends_with('Z'));
    // RSA keys show their size.
    let r = world(KeyKind::Rsa2048, "aes128-sha256-modp2048");
    let (certs, _) = iked::daemon::certificate_list(&load(&r.a).credentials);
    assert_eq!(certs.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["RSA-2048", "RSA-2048"]);
    // The text form.
    let text = iked::ctl::format::list_certs(&certs, &[]);
    assert!(
        text.starts_with(&format!("X.509 certificate: {}\n  subject:  \"O=Test, CN=gw-a\"\n", certs[0].path)),
        "{text}"
    );
}

#[test]
fn a_crl_loaded_by_load_all_refuses_the_next_handshake_and_keeps_the_sas() {
    let (w, mut pair) = bring_up(KeyKind::P256, "aes128-sha256-ecp256");
    assert_eq!(established(&pair), (up(), up()));
    // B learns that A's certificate is revoked, and reloads as load-all does.
    w.ca.revoke(w.a.leaf.pem_path());
    std::fs::write(w.b.swanctl("x509crl/ca.crl"), w.ca.crl_pem()).unwrap_or_else(|e| panic!("{e}"));
    let daemon = iked::daemon::Daemon::new(w.b.config_path(), load(&w.b), iked::daemon::Detached, None);
    let summary = daemon.reload().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.unchanged, ["gw"], "new CRLs change no connection");
    assert_eq!((summary.certs, summary.cacerts, summary.crls, summary.keys), (1, 1, 1, 1));
    let (_, crls) = iked::daemon::certificate_list(&daemon.config().credentials);
    assert_eq!(crls.iter().map(|c| c.revoked).collect::<Vec<_>>(), [1]);
    let now = pair.now;
    pair.b.reconfigure(now, daemon.config(), &summary);
    // A starts a new ISAKMP SA: B refuses A's certificate.
    pair.a.rekey_now(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    // Each retransmission of A's message is refused again.
    let revoked = Pair::counter(&pair.b, "cert-refused-revoked");
    assert!(revoked >= 1, "{revoked}");
    assert_eq!(Pair::counter(&pair.b, "discarded-certificate"), revoked, "no other reason");
    let stats =
        iked::ctl::protocol::Stats { ike_datagrams: pair.b.counts().ike_datagrams, ..Default::default() };
    let text = iked::ctl::format::stats(&stats);
    assert!(text.contains("certificate refusals (of discarded-certificate):\n"), "{text}");
    assert!(text.contains(&format!("\n  revoked: {revoked}\n")), "ikectl stats shows it: {text}");
    let b_sas = Pair::sas(&pair.b, pair.now);
    assert!(b_sas.contains(&("ESTABLISHED".to_owned(), 1)), "the established SAs stay: {b_sas:?}");
    assert_eq!(pair.b.counts().child_sas, 1);
    // When A's attempt has timed out at B, `ikectl monitor` says why.
    pair.run_for(Duration::from_secs(40));
    let events: Vec<String> = std::iter::from_fn(|| pair.b.poll_monitor())
        .map(|event| iked::ctl::format::event_line(&iked::ctl::protocol::EventRecord { time_ms: 0, event }))
        .filter(|l| l.contains("auth-failed"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].ends_with("auth-failed (no connection) from (unknown): certificate refused: revoked"),
        "{events:?}"
    );
    assert!(Pair::sas(&pair.b, pair.now).contains(&("ESTABLISHED".to_owned(), 1)));
    // A failed load leaves the material in place.
    std::fs::write(w.b.swanctl("x509crl/broken.crl"), "garbage").unwrap_or_else(|e| panic!("{e}"));
    let e = daemon.reload().err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        e,
        format!(
            "{}: daemon.swanctl_dir: {}: not a CRL in PEM or DER (malformed, truncated or too large)",
            w.b.config_path().display(),
            w.b.swanctl("x509crl/broken.crl").display()
        )
    );
    assert_eq!(daemon.config().credentials.crls.len(), 1);
}

#[test]
fn a_peer_of_another_ca_is_refused_as_untrusted_and_an_unexpected_identity_fails() {
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    // B trusts another CA only.
    let other = Ca::root(&w.b.dir.join("other"), "other", KeyKind::P256);
    copy(&other.dir().join("ca.pem"), &w.b.swanctl("x509ca/other.pem"));
    let text = std::fs::read_to_string(w.b.config_path()).unwrap_or_default();
    std::fs::write(
        w.b.config_path(),
        text.replace(
            "remote.id = \"O=Test, CN=gw-a\"",
            "remote.id = \"O=Test, CN=gw-a\"\nremote.cacerts = \"other.pem\"",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.a.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    let untrusted = Pair::counter(&pair.b, "cert-refused-untrusted-issuer");
    assert!(untrusted >= 1, "{untrusted}");
    assert_eq!(Pair::counter(&pair.b, "discarded-certificate"), untrusted, "no other reason");
    assert!(Pair::sas(&pair.b, pair.now).iter().all(|(s, _)| s != "ESTABLISHED"));
    // A expects someone else than gw-b: B's certificate does not hold it.
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    let text = std::fs::read_to_string(w.a.config_path()).unwrap_or_default();
    std::fs::write(w.a.config_path(), text.replace("CN=gw-b\"", "CN=gw-c\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut pair = Pair::new(&w);
    let now = pair.now;
    pair.b.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(3));
    let refused = Pair::counts_of(&pair.a, "cert-refused-");
    assert_eq!(refused.len(), 0, "A refuses B's ID before its certificate: {refused:?}");
    let discarded = Pair::counter(&pair.a, "discarded-refused");
    assert!(discarded >= 1, "{discarded}");
    assert!(Pair::sas(&pair.a, pair.now).iter().all(|(s, _)| s != "ESTABLISHED"));
    assert!(Pair::sas(&pair.b, pair.now).iter().all(|(s, _)| s != "ESTABLISHED"));
}

#[test]
fn a_certificate_outside_its_validity_is_refused_with_its_reason() {
    let year = Duration::from_secs(365 * 86_400);
    for (wall, reason) in [
        (SystemTime::now() + year, "cert-refused-expired"),
        (SystemTime::now() - year, "cert-refused-not-yet-valid"),
    ] {
        let w = world(KeyKind::P256, "aes128-sha256-ecp256");
        let mut pair = Pair::with_clock_of_a(&w, wall);
        let now = pair.now;
        pair.b.initiate(now, "gw", None).unwrap_or_else(|e| panic!("{}", e.message));
        pair.run_for(Duration::from_secs(3));
        let refused = Pair::counts_of(&pair.a, "cert-refused-");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, reason);
        assert!(Pair::sas(&pair.a, pair.now).iter().all(|(s, _)| s != "ESTABLISHED"));
    }
}

#[test]
fn check_config_reports_certificate_errors() {
    let w = world(KeyKind::P256, "aes128-sha256-ecp256");
    let run = |path: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_iked"))
            .arg("--check-config")
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("iked: {e}"))
    };
    let out = run(&w.a.config_path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(w.a.swanctl("private/gw-a.key")).unwrap_or_else(|e| panic!("{e}"));
    let out = run(&w.a.config_path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let dir = w.a.dir.join("swanctl").display().to_string();
    assert!(
        err.contains(&format!(
            "{}: connections.gw.local.certs: no private key in {dir}/private, {dir}/rsa or {dir}/ecdsa matches \
             certificate {dir}/x509/gw-a.pem (O=Test, CN=gw-a)",
            w.a.config_path().display()
        )),
        "{err}"
    );
    // An expired certificate of ours.
    let old = w.ca.leaf("gw-a-old", KeyKind::P256, "DNS:x", Validity::Expired);
    copy(old.pem_path(), &w.a.swanctl("x509/gw-a.pem"));
    copy(&old.key_path, &w.a.swanctl("private/gw-a.key"));
    let out = run(&w.a.config_path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("connections.gw.local.certs: certificate ") && err.contains(" expired on "),
        "{err}"
    );
}

/// Runs ikectl on `socket`: (exit code, stdout, stderr).
fn ikectl(socket: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ikectl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ikectl: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `check` for up to 15 s: whether it came true.
fn eventually(check: impl Fn() -> bool) -> bool {
    for _ in 0..300 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// An iked process, stopped with SIGTERM when dropped.
struct Iked {
    child: std::process::Child,
    socket: PathBuf,
}

impl Iked {
    fn start(g: &Gateway) -> Self {
        let log = std::fs::File::create(g.dir.join("iked.log")).unwrap_or_else(|e| panic!("{e}"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_iked"))
            .arg("--config")
            .arg(g.config_path())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("iked: {e}"));
        let socket = g.dir.join("iked.sock");
        let s = socket.clone();
        assert!(eventually(|| ikectl(&s, &["stats"]).0 == Some(0)), "iked answers on its socket");
        Self { child, socket }
    }

    fn ctl(&self, args: &[&str]) -> String {
        let (code, out, err) = ikectl(&self.socket, args);
        assert_eq!(code, Some(0), "ikectl {args:?}: {err}");
        out
    }

    /// (state, child SAs) of each IKE SA, from `list-sas --json`.
    fn sas(&self) -> Vec<(String, usize)> {
        let out = self.ctl(&["--json", "list-sas"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["ike_sas"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let children = s["child-sas"].as_array().map_or(0, Vec::len);
                        (s["state"].as_str().unwrap_or_default().to_owned(), children)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Iked {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Two iked processes on loopback, driven by ikectl only: up with
/// certificates, list-certs, a CRL loaded by load-all refusing A's next
/// ISAKMP SA while the established SAs stay, the refusal in stats. The
/// engine sends from port 500, so each run takes two loopback addresses of
/// its own (127.x.y.1 and .2, from the process id) with the standard ports.
#[test]
fn two_iked_processes_authenticate_with_certificates_and_reload_a_crl() {
    let [_, _, x, y] = std::process::id().to_be_bytes();
    let lo = |n: u8| IpAddr::V4(Ipv4Addr::new(127, x | 0x80, y, n));
    let w = world_at(KeyKind::Rsa2048, "aes128-sha256-modp2048", (lo(1), lo(2)));
    let a = Iked::start(&w.a);
    let b = Iked::start(&w.b);
    a.ctl(&["initiate", "--ike", "gw"]);
    let logs = || {
        let read = |g: &Gateway| std::fs::read_to_string(g.dir.join("iked.log")).unwrap_or_default();
        format!("gw-a's log:\n{}\ngw-b's log:\n{}", read(&w.a), read(&w.b))
    };
    assert!(eventually(|| a.sas() == up() && b.sas() == up()), "both ends up with a child\n{}", logs());

    let out = a.ctl(&["--json", "list-certs"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["type"], "certs");
    let own = &v["certificates"][0];
    assert_eq!(own["path"], w.a.swanctl("x509/gw-a.pem").display().to_string());
    assert_eq!(own["subject"], "O=Test, CN=gw-a");
    assert_eq!(own["issuer"], "O=Test, CN=ca");
    assert_eq!(own["sans"], serde_json::json!(["DNS:gw-a.example", format!("IP:{}", lo(1))]));
    assert_eq!(own["key"], "RSA-2048");
    assert_eq!(own["ca"], false);
    assert_eq!(own["has-private-key"], true);
    assert_eq!(own["connections"], serde_json::json!(["gw"]));
    assert_eq!(v["certificates"][1]["ca"], true);
    assert_eq!(v["crls"], serde_json::json!([]));

    w.ca.revoke(w.a.leaf.pem_path());
    std::fs::write(w.b.swanctl("x509crl/ca.crl"), w.ca.crl_pem()).unwrap_or_else(|e| panic!("{e}"));
    let out = b.ctl(&["load-all"]);
    assert_eq!(
        out,
        "unchanged: gw\ncredentials: 1 certificates, 1 CA certificates, 1 CRLs, 1 private keys\n"
    );
    let out = b.ctl(&["--json", "list-certs"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["crls"][0]["revoked"], 1);

    a.ctl(&["rekey", "--ike", "gw"]);
    let refused =
        || b.ctl(&["stats"]).lines().any(|l| l.trim().strip_prefix("revoked: ").is_some_and(|n| n != "0"));
    assert!(eventually(refused), "B refuses A's revoked certificate\n{}", logs());
    let stats = b.ctl(&["stats"]);
    assert!(stats.contains("certificate refusals (of discarded-certificate):\n"), "{stats}");
    assert!(b.sas().contains(&("ESTABLISHED".to_owned(), 1)), "B's SAs stay: {:?}", b.sas());
    assert!(a.sas().contains(&("ESTABLISHED".to_owned(), 1)), "A's SAs stay: {:?}", a.sas());

    // A broken CRL: load-all fails naming it, and the old material stays.
    std::fs::write(w.b.swanctl("x509crl/broken.crl"), "garbage").unwrap_or_else(|e| panic!("{e}"));
    let (code, _, err) = ikectl(&b.socket, &["load-all"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("daemon.swanctl_dir: ") && err.contains("broken.crl: not a CRL"), "{err}");
    let out = b.ctl(&["--json", "list-certs"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["crls"].as_array().map(Vec::len), Some(1));
}
