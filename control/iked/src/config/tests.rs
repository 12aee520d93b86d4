//! Configuration tests: the shipped example, the round trip, defaults, and
//! one test per error class checking the exact message.

use super::*;
use ike::crypto::DhGroup;
use std::net::IpAddr;
use std::path::Path;

const EXAMPLE: &str = include_str!("../../../../scripts/iked.example.toml");

/// A minimal valid configuration; tests splice one line in.
const BASE: &str = r#"
[connections.home]
version = 1
remote_addrs = "198.51.100.2"
local.auth = "psk"
remote.auth = "psk"
remote.id = "@b.example"

[connections.home.children.net]
local_ts = "10.1.0.0/16"
remote_ts = "10.2.0.0/16"

[secrets.ike-home]
id = "@b.example"
secret = "s3cret"
"#;

fn ok(text: &str) -> Config {
    parse(text, Path::new("gw.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    match parse(text, Path::new("gw.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// BASE with `line` inserted after the `[table]` header line.
fn with(table: &str, line: &str) -> String {
    let header = format!("[{table}]\n");
    assert!(BASE.contains(&header), "{table}");
    BASE.replacen(&header, &format!("{header}{line}\n"), 1)
}

#[test]
fn the_shipped_example_is_valid() {
    let c = ok(EXAMPLE);
    assert_eq!(c.connections.len(), 2);
    let site = c.connection("site-b").unwrap_or_else(|| panic!("site-b"));
    assert_eq!(site.initiate_address(), "198.51.100.2".parse().ok());
    assert_eq!(site.ike_transforms().len(), 2);
    assert_eq!(site.keyingtries, 0);
    let (_, net) = c.child("net-b").unwrap_or_else(|| panic!("net-b"));
    assert_eq!(net.pfs_group, Some(DhGroup::Modp2048));
    assert_eq!(net.start_action, StartAction::Trap);
    assert_eq!(net.replay_window, 64);
    assert_eq!(c.psk_for(site).map(|k| k.0.to_vec()), Some(b"change-me-site-b-psk".to_vec()));
    let rw = c.connection("roadwarrior").unwrap_or_else(|| panic!("rw"));
    assert_eq!(rw.remote_addrs, vec![AddressSpec::Any]);
    assert_eq!(c.psk_for(rw).map(|k| k.0.to_vec()), Some(b"change-me-rw".to_vec()));
}

#[test]
fn a_full_config_round_trips_through_render() {
    let c = ok(EXAMPLE);
    let text = render(&c);
    let again = parse(&text, Path::new("rendered.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c);
    assert!(text.contains("rekey_time = \"4h\""), "{text}");
}

#[test]
fn strongswan_defaults_apply() {
    let c = ok(BASE);
    let conn = &c.connections[0];
    assert_eq!(conn.local_addrs, vec![AddressSpec::Any]);
    assert_eq!((conn.local_port, conn.remote_port), (500, 500));
    assert_eq!(conn.rekey_time, Duration::from_secs(4 * 3600));
    assert_eq!(conn.over_time, Duration::from_secs(1440), "10% of rekey_time");
    assert_eq!(conn.rand_time, conn.over_time);
    assert_eq!(conn.reauth_time, Duration::ZERO);
    assert_eq!(conn.dpd_delay, Duration::ZERO);
    assert_eq!(conn.dpd_timeout, Duration::from_secs(150));
    assert_eq!(conn.keyingtries, 1);
    assert!(!conn.aggressive && !conn.encap);
    assert_eq!(conn.ike_lifetime(), Duration::from_secs(4 * 3600 + 1440));
    assert_eq!(conn.proposals[0].text, proposal::DEFAULT_IKE_PROPOSAL);
    assert_eq!(conn.local.id, ConfigId::Any);
    let ch = &conn.children[0];
    assert_eq!(ch.rekey_time, Duration::from_secs(3600));
    assert_eq!(ch.life_time, Duration::from_secs(3960), "rekey_time + 10%");
    assert_eq!(ch.rand_time, Duration::from_secs(360), "life_time - rekey_time");
    assert_eq!((ch.rekey_bytes, ch.life_bytes, ch.rand_bytes), (0, 0, 0));
    assert_eq!(ch.replay_window, 32);
    assert_eq!(ch.mode, ike::engine::ChildMode::Tunnel);
    assert_eq!(ch.start_action, StartAction::None);
    assert_eq!(ch.dpd_action, PeerGoneAction::Clear);
    assert_eq!(ch.close_action, PeerGoneAction::Clear);
    assert_eq!(ch.esp_proposals.len(), 2);
    assert_eq!(ch.pfs_group, None);
    let d = &c.daemon;
    assert_eq!(d.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
    assert_eq!(d.sadb, Path::new(DEFAULT_SADB));
    assert_eq!((d.port, d.port_nat_t), (500, 4500));
    assert!(d.delete_sas_on_exit);
    assert_eq!(d.keylog, None);
}

#[test]
fn volume_limits_default_like_swanctl() {
    let c = ok(&with("connections.home.children.net", "rekey_bytes = \"1g\"\nrekey_packets = 1000000"));
    let ch = &c.connections[0].children[0];
    assert_eq!(ch.rekey_bytes, 1 << 30);
    assert_eq!(ch.life_bytes, (1 << 30) + (1 << 30) / 10);
    assert_eq!(ch.rand_bytes, ch.life_bytes - ch.rekey_bytes);
    assert_eq!((ch.rekey_packets, ch.life_packets, ch.rand_packets), (1_000_000, 1_100_000, 100_000));
}

/// Only the hard limit given: the rekey comes at life / 1.1 (current
/// swanctl), not never (the SA would die at its hard limit unrekeyed).
#[test]
fn a_hard_volume_limit_alone_still_rekeys_before_it() {
    let c = ok(&with("connections.home.children.net", "life_bytes = \"2m\"\nlife_packets = 11000"));
    let ch = &c.connections[0].children[0];
    assert_eq!((ch.rekey_bytes, ch.life_bytes, ch.rand_bytes), (1_906_501, 2_097_152, 190_651));
    assert_eq!((ch.rekey_packets, ch.life_packets, ch.rand_packets), (10_000, 11_000, 1_000));
    // Both given, close together (1 MB soft, 2 MB hard): taken as they are.
    let c = ok(&with("connections.home.children.net", "rekey_bytes = \"1m\"\nlife_bytes = \"2m\""));
    let ch = &c.connections[0].children[0];
    assert_eq!((ch.rekey_bytes, ch.life_bytes, ch.rand_bytes), (1 << 20, 2 << 20, 1 << 20));
}

/// A soft limit at or beyond the hard one is refused, naming the key and why.
#[test]
fn a_soft_volume_limit_not_below_the_hard_one_is_refused() {
    assert_eq!(
        err(&with("connections.home.children.net", "rekey_bytes = \"3m\"\nlife_bytes = \"2m\"")),
        "gw.toml: connections.home.children.net.life_bytes: life_bytes (2097152) must be greater than \
         rekey_bytes (3145728): the soft limit starts the rekey, which must be done before the hard limit ends the SA"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "rekey_packets = 500\nlife_packets = 500")),
        "gw.toml: connections.home.children.net.life_packets: life_packets (500) must be greater than \
         rekey_packets (500): the soft limit starts the rekey, which must be done before the hard limit ends the SA"
    );
}

#[test]
fn random_jitter_is_capped_and_checked() {
    let c = ok(&with("connections.home.children.net", "life_time = \"3h\""));
    assert_eq!(
        c.connections[0].children[0].rand_time,
        Duration::from_secs(3600),
        "default capped at rekey_time"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "rand_time = \"61m\"")),
        "gw.toml: connections.home.children.net.rand_time: rand_time (61m) must not exceed rekey_time (1h)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "rekey_packets = 100\nrand_packets = 101")),
        "gw.toml: connections.home.children.net.rand_packets: rand_packets (101) must not exceed rekey_packets (100)"
    );
    assert_eq!(
        err(&with("connections.home", "rand_time = \"5h\"")),
        "gw.toml: connections.home.rand_time: rand_time (5h) must not exceed rekey_time/reauth_time (4h)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "rekey_bytes = \"1m\"\nlife_bytes = \"1m\"")),
        "gw.toml: connections.home.children.net.life_bytes: life_bytes (1048576) must be greater than rekey_bytes \
         (1048576): the soft limit starts the rekey, which must be done before the hard limit ends the SA"
    );
}

#[test]
fn durations_in_every_swanctl_form() {
    for (v, secs) in
        [("7200", 7200), ("\"7200s\"", 7200), ("\"120m\"", 7200), ("\"2h\"", 7200), ("\"2d\"", 172_800)]
    {
        let c = ok(&with("connections.home", &format!("rekey_time = {v}")));
        assert_eq!(c.connections[0].rekey_time, Duration::from_secs(secs), "{v}");
    }
}

#[test]
fn ikev2_is_refused() {
    assert_eq!(
        err(&BASE.replace("version = 1", "version = 2")),
        "gw.toml: connections.home.version: IKEv2 is not supported: this daemon speaks IKEv1 only (use version = 1)"
    );
}

#[test]
fn version_zero_means_ikev1_and_other_versions_are_refused() {
    assert_eq!(ok(&BASE.replace("version = 1", "version = 0")).connections.len(), 1);
    assert_eq!(
        err(&BASE.replace("version = 1", "version = 3")),
        "gw.toml: connections.home.version: invalid IKE version 3 (use version = 1)"
    );
}

#[test]
fn unknown_keys_are_errors() {
    assert_eq!(err(&with("connections.home", "mobike = false")), "gw.toml:3: connections.home.mobike: unknown field `mobike`, expected one of `version`, `local_addrs`, `remote_addrs`, `local_port`, `remote_port`, `proposals`, `aggressive`, `encap`, `prefer_configured_proposals`, `dpd_delay`, `dpd_timeout`, `rekey_time`, `reauth_time`, `over_time`, `rand_time`, `keyingtries`, `send_cert`, `send_certreq`, `local`, `remote`, `children`");
    assert_eq!(err(&with("connections.home.children.net", "updown = \"/bin/true\"")), "gw.toml:10: connections.home.children.net.updown: unknown field `updown`, expected one of `local_ts`, `remote_ts`, `esp_proposals`, `mode`, `start_action`, `dpd_action`, `close_action`, `rekey_time`, `life_time`, `rand_time`, `rekey_bytes`, `life_bytes`, `rand_bytes`, `rekey_packets`, `life_packets`, `rand_packets`, `replay_window`");
    assert_eq!(
        err(&format!("{BASE}\n[charon]\nthreads = 4\n")),
        "gw.toml:17: charon: unknown field `charon`, expected one of `daemon`, `connections`, `secrets`"
    );
    assert_eq!(err(&format!("{BASE}\n[daemon]\nthreads = 4\n")), "gw.toml:18: daemon.threads: unknown field `threads`, expected one of `sadb`, `control_socket`, `ctl_group`, `listen`, `port`, `port_nat_t`, `keylog`, `delete_sas_on_exit`, `init_limit_half_open`, `block_threshold`, `half_open_reserved`, `metrics`, `metrics_per_sa`, `log`, `swanctl_dir`");
}

#[test]
fn prefer_configured_proposals_yes_no() {
    assert!(!ok(BASE).connections[0].prefer_configured_proposals, "off by default");
    for (line, want) in [
        ("prefer_configured_proposals = \"yes\"", true),
        ("prefer_configured_proposals = \"no\"", false),
        ("prefer_configured_proposals = true", true),
    ] {
        let c = ok(&with("connections.home", line));
        assert_eq!(c.connections[0].prefer_configured_proposals, want, "{line}");
    }
    assert_eq!(
        err(&with("connections.home", "prefer_configured_proposals = \"sometimes\"")),
        "gw.toml:3: connections.home.prefer_configured_proposals: invalid value `sometimes`: expected yes or no (or a TOML true/false)"
    );
    assert_eq!(
        err(&with("connections.home", "prefer_configured_proposals = 1")),
        "gw.toml:3: connections.home.prefer_configured_proposals: invalid type: integer `1`, expected yes or no (or a TOML true/false)"
    );
}

#[test]
fn bad_proposal_keywords() {
    assert_eq!(
        err(&with("connections.home.children.net", "esp_proposals = \"aes128gcm17-modp2048\"")),
        "gw.toml: connections.home.children.net.esp_proposals: unknown keyword `aes128gcm17` in proposal `aes128gcm17-modp2048`"
    );
    assert_eq!(
        err(&with("connections.home", "proposals = \"aes128-sha256-modp2048, aes256-md4-modp2048\"")),
        "gw.toml: connections.home.proposals: unknown keyword `md4` in proposal `aes256-md4-modp2048`"
    );
}

#[test]
fn aes_gcm_in_an_ike_proposal() {
    assert_eq!(
        err(&with("connections.home", "proposals = \"aes256gcm16-sha256-modp2048\"")),
        "gw.toml: connections.home.proposals: `aes256gcm16` in proposal `aes256gcm16-sha256-modp2048`: AES-GCM cannot be used for IKEv1 (phase 1 has no AEAD); use e.g. aes256-sha256-modp2048"
    );
}

#[test]
fn bad_subnets() {
    assert_eq!(
        err(&BASE.replace("remote_ts = \"10.2.0.0/16\"", "remote_ts = \"10.2.0.0/33\"")),
        "gw.toml: connections.home.children.net.remote_ts: invalid subnet `10.2.0.0/33`"
    );
    assert_eq!(
        err(&BASE.replace("local_ts = \"10.1.0.0/16\"", "local_ts = [\"10.1.0.0/16\", \"10.1.2.3/24\"]")),
        "gw.toml: connections.home.children.net.local_ts: subnet `10.1.2.3/24` has host bits set (did you mean 10.1.2.0/24?)"
    );
    assert_eq!(
        err(&BASE.replace("remote_addrs = \"198.51.100.2\"", "remote_addrs = \"gw-b.example.net\"")),
        "gw.toml: connections.home.remote_addrs: `gw-b.example.net` is not an IP address (DNS names are not supported)"
    );
}

#[test]
fn missing_secret_for_a_psk_connection() {
    assert_eq!(
        err(&BASE.replace("id = \"@b.example\"\nsecret", "id = \"@c.example\"\nsecret")),
        "gw.toml: connections.home.local.auth: auth = \"psk\" but no secrets.ike* section matches local id %any or remote id @b.example"
    );
    assert_eq!(err(&BASE.replace("secret = \"s3cret\"", "")), "gw.toml: secrets.ike-home.secret: missing");
}

#[test]
fn secrets_match_like_strongswan() {
    let text = format!("{BASE}\n[secrets.ike-any]\nsecret = \"fallback\"\n[secrets.ike-both]\nid = \"@b.example\"\nid-1 = \"%any\"\nsecret = \"0x414243\"\n");
    let c = ok(&text);
    // ike-both and ike-home both match the remote id; the first by name wins.
    assert_eq!(c.psk_for(&c.connections[0]).map(|k| k.0.to_vec()), Some(b"ABC".to_vec()));
    let only_wildcard = BASE.replace("id = \"@b.example\"\nsecret", "id = \"%any\"\nsecret");
    let c = ok(&only_wildcard);
    assert_eq!(c.psk_for(&c.connections[0]).map(|k| k.0.to_vec()), Some(b"s3cret".to_vec()));
    assert_eq!(
        err(&BASE.replace("secret = \"s3cret\"", "secret = \"0sAAAA\"")),
        "gw.toml: secrets.ike-home.secret: base64 secrets (0s...) are not supported; write the key as 0x<hex>"
    );
    assert_eq!(
        err(&format!("{BASE}\n[secrets.eap-user]\nsecret = \"x\"\n")),
        "gw.toml: secrets.eap-user: only ike* sections (pre-shared keys) are supported; name it e.g. ike-home"
    );
}

#[test]
fn unset_auth_is_refused() {
    assert_eq!(
        err(&BASE.replace("remote.auth = \"psk\"\n", "")),
        "gw.toml: connections.home.remote.auth: not set: use auth = \"psk\" or auth = \"pubkey\""
    );
    assert_eq!(
        err(&BASE.replace("remote.auth = \"psk\"", "remote.auth = \"eap\"")),
        "gw.toml: connections.home.remote.auth: authentication method `eap` is not supported (psk or pubkey)"
    );
}

#[path = "../../../ike/tests/common/certs.rs"]
#[allow(dead_code)]
mod certs;

/// A swanctl directory made by `openssl` at test time: a root CA in
/// `x509ca/`, our certificate `gw-a.pem` (SAN `gw-a.example`) in `x509/`
/// and its key in `private/`, plus the CA that made them.
struct Swanctl {
    dir: tempfile::TempDir,
    ca: certs::Ca,
    leaf: certs::Leaf,
}

impl Swanctl {
    fn new(kind: certs::KeyKind) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = certs::Ca::root(&dir.path().join("work"), "ca", kind);
        let leaf = ca.leaf("gw-a", kind, "DNS:gw-a.example,IP:192.0.2.1", certs::Validity::Current);
        let s = Self { dir, ca, leaf };
        s.mkdirs();
        s.copy(s.leaf.pem_path(), "x509/gw-a.pem");
        s.copy(&s.ca.dir().join("ca.pem"), "x509ca/ca.pem");
        s.copy(&s.leaf.key_path, "private/gw-a.key");
        s
    }

    fn mkdirs(&self) {
        for d in ["x509", "x509ca", "x509crl", "private"] {
            std::fs::create_dir_all(self.dir.path().join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn copy(&self, from: &Path, to: &str) {
        std::fs::copy(from, self.path(to)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }

    /// BASE turned into a pubkey connection on this directory, with
    /// `local` and `remote` lines for the two ends.
    fn config(&self, local: &str, remote: &str) -> String {
        format!(
            "[daemon]\nswanctl_dir = \"{}\"\n{}",
            self.dir.path().display(),
            BASE.replace("local.auth = \"psk\"\n", &format!("local.auth = \"pubkey\"\n{local}\n")).replace(
                "remote.auth = \"psk\"\nremote.id = \"@b.example\"\n",
                &format!("remote.auth = \"pubkey\"\n{remote}\n")
            )
        )
    }

    fn std(&self) -> String {
        self.config("local.certs = [\"gw-a.pem\"]", "remote.id = \"O=Test, CN=gw-b\"")
    }
}

#[test]
fn a_pubkey_connection_loads_its_certificate_key_and_cas() {
    let s = Swanctl::new(certs::KeyKind::P256);
    let c = ok(&s.std());
    let conn = c.connection("home").unwrap_or_else(|| panic!("home"));
    assert_eq!(conn.local.auth, AuthMethod::Pubkey);
    assert_eq!(conn.local.certs, vec![s.path("x509/gw-a.pem")]);
    assert_eq!(conn.send_cert, ike::engine::SendCert::IfAsked);
    assert!(conn.send_certreq);
    assert_eq!(c.daemon.swanctl_dir, s.dir.path());
    let cc = c.credentials.auth_for("home").unwrap_or_else(|| panic!("credentials"));
    assert_eq!(cc.local_id, ike::engine::Identity::DistinguishedName(s.leaf.cert.subject_der()));
    assert_eq!(cc.auth.certificates, vec![s.leaf.cert.clone()], "a root CA is not sent");
    assert_eq!(cc.auth.private_key.public_key(), s.leaf.key.public_key());
    assert_eq!(cc.auth.trust.authorities, vec![s.ca.cert.clone()]);
    assert_eq!(c.credentials.keys.len(), 1);
    assert_eq!(
        conn.remote.id.to_engine().map(|i| i.matches(
            &ike::engine::Identity::DistinguishedName(
                der::Encode::to_der(
                    &s.ca
                        .leaf("gw-b", certs::KeyKind::P256, "DNS:b", certs::Validity::Current)
                        .cert
                        .x509()
                        .tbs_certificate
                        .subject
                )
                .unwrap_or_default()
            )
            .to_payload()
        )),
        Some(true),
        "remote.id in strongSwan's order matches openssl's subject of gw-b"
    );
    // The rendered form reads back the same, with a relative swanctl_dir too.
    assert_eq!(ok(&render(&c)), c);
    let text = render(&c);
    assert!(text.contains("certs = [\"gw-a.pem\"]"), "{text}");
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Ok(rel) = s.dir.path().strip_prefix(&cwd).map(Path::to_path_buf).or_else(|_| {
        // A relative path from the working directory up to / and down.
        let ups = cwd.components().count().saturating_sub(1);
        let up: std::path::PathBuf = std::iter::repeat_n("..", ups).collect();
        s.dir.path().strip_prefix("/").map(|p| up.join(p))
    }) {
        let relative = s.std().replace(&s.dir.path().display().to_string(), &rel.display().to_string());
        let c = ok(&relative);
        assert_eq!(ok(&render(&c)), c);
    }
    // And the engine entry carries it.
    let (conn, child) = c.child("net").unwrap_or_else(|| panic!("net"));
    let local: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
    let remote: IpAddr = "198.51.100.2".parse().unwrap_or(IpAddr::from([0; 4]));
    let peers = engine::peer_configs(&c, conn, child, local, remote).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&peers[0].auth, ike::engine::AuthMethod::PublicKey(p) if p.certificates.len() == 1));
    assert_eq!(peers[0].auth.method_id(), ike::msgs::p1attr::AUTH_ECDSA_256);
}

#[test]
fn local_id_must_be_in_the_certificate_and_send_cert_is_read() {
    let s = Swanctl::new(certs::KeyKind::Rsa2048);
    let c = ok(&s
        .config(
            "local.certs = [\"gw-a.pem\"]\nlocal.id = \"@gw-a.example\"",
            "remote.id = \"@gw-b.example\"\nremote.cacerts = [\"ca.pem\"]",
        )
        .replace("version = 1\n", "version = 1\nsend_cert = \"always\"\nsend_certreq = false\n"));
    let conn = c.connection("home").unwrap_or_else(|| panic!("home"));
    assert_eq!((conn.send_cert, conn.send_certreq), (ike::engine::SendCert::Always, false));
    assert_eq!(conn.remote.cacerts, vec![s.path("x509ca/ca.pem")]);
    let cc = c.credentials.auth_for("home").unwrap_or_else(|| panic!("credentials"));
    assert_eq!(cc.local_id, ike::engine::Identity::Fqdn("gw-a.example".into()));
    assert_eq!(cc.auth.private_key.algorithm(), ike::auth::SignatureAlgorithm::Rsa);
    // The subject in strongSwan's notation, and the IP SAN, are ours too.
    for id in ["O=Test, CN=gw-a", "192.0.2.1"] {
        ok(&s.config(&format!("local.certs = [\"gw-a.pem\"]\nlocal.id = \"{id}\""), "remote.id = \"@b\""));
    }
    let path = s.path("x509/gw-a.pem");
    for id in ["@gw-b.example", "O=Test, CN=gw-b", "192.0.2.9"] {
        assert_eq!(
            err(&s
                .config(&format!("local.certs = [\"gw-a.pem\"]\nlocal.id = \"{id}\""), "remote.id = \"@b\"")),
            format!(
                "gw.toml: connections.home.local.id: `{id}` is neither the subject nor a subjectAltName of \
                 certificate {} (O=Test, CN=gw-a)",
                path.display()
            )
        );
    }
    assert_eq!(
        err(&s.std().replace("version = 1\n", "version = 1\nsend_cert = \"sometimes\"\n")),
        "gw.toml: connections.home.send_cert: invalid send_cert `sometimes` (ifasked, always or never)"
    );
}

#[test]
fn certificate_errors_name_their_key() {
    let s = Swanctl::new(certs::KeyKind::P256);
    let dir = s.dir.path().display().to_string();
    // Missing file.
    assert_eq!(
        err(&s.config("local.certs = [\"nope.pem\"]", "remote.id = \"@b\"")),
        format!(
            "gw.toml: connections.home.local.certs: cannot read {dir}/x509/nope.pem: No such file or directory (os error 2)"
        )
    );
    // Not a certificate; absolute paths are taken as they are.
    std::fs::write(
        s.path("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        err(&s.config(&format!("local.certs = [\"{dir}/junk.pem\"]"), "remote.id = \"@b\"")),
        format!(
            "gw.toml: connections.home.local.certs: {dir}/junk.pem: not an X.509 certificate in PEM or DER \
             (malformed, truncated or too large)"
        )
    );
    assert_eq!(
        err(&s.config("local.certs = [\"gw-a.pem\"]", "remote.id = \"@b\"\nremote.cacerts = \"missing.pem\"")),
        format!(
            "gw.toml: connections.home.remote.cacerts: cannot read {dir}/x509ca/missing.pem: No such file or directory (os error 2)"
        )
    );
    // Required keys, and sides.
    assert_eq!(
        err(&s.config("", "remote.id = \"@b\"")),
        "gw.toml: connections.home.local.certs: required with auth = \"pubkey\": our certificate, e.g. certs = [\"gw.pem\"] in x509/"
    );
    assert_eq!(
        err(&s.config("local.certs = [\"gw-a.pem\"]", "")),
        "gw.toml: connections.home.remote.id: required with auth = \"pubkey\": the identity the peer's certificate \
         must hold (e.g. \"C=CH, O=example, CN=gw-b\" or \"@gw-b.example\")"
    );
    assert_eq!(
        err(&s.std().replace("remote.auth = \"pubkey\"", "remote.auth = \"psk\"")),
        "gw.toml: connections.home.remote.auth: IKEv1 authenticates both sides with one method: local.auth is \
         pubkey, so remote.auth must be too"
    );
    assert_eq!(
        err(&BASE.replace(
            "remote.id = \"@b.example\"",
            "remote.id = \"@b.example\"\nremote.cacerts = \"ca.pem\""
        )),
        "gw.toml: connections.home.remote.cacerts: only used with auth = \"pubkey\""
    );
    // A junk file in the directory.
    std::fs::write(s.path("x509crl/bad.crl"), b"\x30\x03\x02\x01\x01").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        err(&s.std()),
        format!(
            "gw.toml: daemon.swanctl_dir: {dir}/x509crl/bad.crl: not a CRL in PEM or DER (malformed, truncated or too large)"
        )
    );
    std::fs::remove_file(s.path("x509crl/bad.crl")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        s.path("private/bad.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(err(&s.std()).starts_with(&format!(
        "gw.toml: daemon.swanctl_dir: {dir}/private/bad.key: not a private key (RSA or ECDSA P-256/P-384"
    )));
    std::fs::remove_file(s.path("private/bad.key")).unwrap_or_else(|e| panic!("{e}"));
    // No key for the certificate.
    std::fs::remove_file(s.path("private/gw-a.key")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        err(&s.std()),
        format!(
            "gw.toml: connections.home.local.certs: no private key in {dir}/private, {dir}/rsa or {dir}/ecdsa \
             matches certificate {dir}/x509/gw-a.pem (O=Test, CN=gw-a)"
        )
    );
    // Another key, in DER (PKCS#8), is read but does not match.
    let other = s.ca.leaf("other", certs::KeyKind::P256, "DNS:o", certs::Validity::Current);
    certs::run_openssl(
        s.dir.path(),
        &["pkey", "-in", &other.key_path.to_string_lossy(), "-outform", "DER", "-out", "private/other.der"],
    );
    assert!(err(&s.std()).contains("no private key in"));
    // Expired and not yet valid.
    s.copy(&s.leaf.key_path, "private/gw-a.key");
    for (name, validity, what) in [
        ("old", certs::Validity::Expired, "expired on "),
        ("new", certs::Validity::NotYetValid, "is not valid before "),
    ] {
        let l = s.ca.leaf(name, certs::KeyKind::P256, "DNS:x", validity);
        s.copy(l.pem_path(), &format!("x509/{name}.pem"));
        s.copy(&l.key_path, &format!("private/{name}.key"));
        let e = err(&s.config(&format!("local.certs = [\"{name}.pem\"]"), "remote.id = \"@b\""));
        let expected = format!(
            "gw.toml: connections.home.local.certs: certificate {dir}/x509/{name}.pem (O=Test, CN={name}) {what}"
        );
        assert!(e.starts_with(&expected), "{e}\n{expected}");
        std::fs::remove_file(s.path(&format!("x509/{name}.pem"))).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn special_files_are_not_read_and_stale_cas_are_warned_about() {
    let s = Swanctl::new(certs::KeyKind::P256);
    let fifo = s.path("x509/fifo.pem");
    let made =
        std::process::Command::new("mkfifo").arg(&fifo).status().unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(made.success());
    assert_eq!(
        err(&s.config("local.certs = [\"fifo.pem\"]", "remote.id = \"@b\"")),
        format!("gw.toml: connections.home.local.certs: {}: not a regular file", fifo.display())
    );
    std::fs::remove_file(&fifo).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(&s.std()).warnings(), Vec::<String>::new());
    let old = s.ca.leaf("old-ca", certs::KeyKind::P256, "DNS:x", certs::Validity::Expired);
    s.copy(old.pem_path(), "x509ca/old.pem");
    assert_eq!(
        ok(&s.std()).warnings(),
        [format!(
            "daemon.swanctl_dir: CA certificate {} (O=Test, CN=old-ca) is expired: peers it issued are refused",
            s.path("x509ca/old.pem").display()
        )]
    );
}

#[test]
fn der_files_and_missing_subdirectories_are_fine() {
    let s = Swanctl::new(certs::KeyKind::P384);
    for d in ["x509crl", "x509ca"] {
        std::fs::remove_dir_all(s.path(d)).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::remove_file(s.path("x509/gw-a.pem")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(s.path("private/gw-a.key")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(s.path("ecdsa")).unwrap_or_else(|e| panic!("{e}"));
    let leaf = s.leaf.pem_path().to_string_lossy().into_owned();
    let key = s.leaf.key_path.to_string_lossy().into_owned();
    certs::run_openssl(s.dir.path(), &["x509", "-in", &leaf, "-outform", "DER", "-out", "x509/gw-a.der"]);
    // SEC1 ("EC PRIVATE KEY") in DER.
    certs::run_openssl(s.dir.path(), &["ec", "-in", &key, "-outform", "DER", "-out", "ecdsa/gw-a.der"]);
    let c = ok(&s.config("local.certs = \"gw-a.der\"", "remote.id = \"@b\""));
    let cc = c.credentials.auth_for("home").unwrap_or_else(|| panic!("credentials"));
    assert_eq!(cc.auth.private_key.algorithm(), ike::auth::SignatureAlgorithm::EcdsaP384);
    assert!(cc.auth.trust.authorities.is_empty());
    assert_eq!(c.credentials.keys[0].path, s.path("ecdsa/gw-a.der"));
}

#[test]
fn bad_values_name_their_key() {
    assert_eq!(
        err(&with("connections.home", "dpd_delay = \"30x\"")),
        "gw.toml:3: connections.home.dpd_delay: invalid duration `30x`: expected a number with an optional s, m, h or d suffix"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "mode = \"beet\"")),
        "gw.toml: connections.home.children.net.mode: mode `beet` is not supported (tunnel or transport)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "start_action = \"route\"")),
        "gw.toml: connections.home.children.net.start_action: invalid start_action `route` (none, trap or start)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "dpd_action = \"hold\"")),
        "gw.toml: connections.home.children.net.dpd_action: invalid dpd_action `hold` (clear, trap or restart)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "life_time = \"30m\"")),
        "gw.toml: connections.home.children.net.life_time: life_time (30m) must be greater than rekey_time (1h)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "esp_proposals = [\"aes128gcm16-modp2048\", \"aes128gcm16-ecp256\"]")),
        "gw.toml: connections.home.children.net.esp_proposals: IKEv1 Quick Mode carries one KE payload, so every ESP proposal must use the same PFS group (found MODP_2048 and ECP_256)"
    );
    assert_eq!(
        err(&with("connections.home.children.net", "esp_proposals = \"null-sha256\"")),
        "gw.toml: connections.home.children.net.esp_proposals: null encryption (ESP_NULL) is recognised but not supported by the IKE engine and dataplane yet"
    );
    assert_eq!(
        err(&with("connections.home", "local_port = 70000")),
        "gw.toml:3: connections.home.local_port: invalid value: integer `70000`, expected u16"
    );
}

#[test]
fn start_action_needs_a_peer_address() {
    let text = with("connections.home.children.net", "start_action = \"start\"")
        .replace("remote_addrs = \"198.51.100.2\"", "remote_addrs = \"%any\"");
    assert_eq!(
        err(&text),
        "gw.toml: connections.home.children.net.start_action: start_action needs a single remote address to initiate to, but remote_addrs has none"
    );
}

#[test]
fn child_names_are_unique() {
    let text = format!(
        "{BASE}\n[connections.other]\nremote_addrs = \"198.51.100.3\"\nlocal.auth = \"psk\"\nremote.auth = \"psk\"\n[connections.other.children.net]\n"
    );
    assert_eq!(
        err(&text),
        "gw.toml: connections.other.children.net: child name `net` is also used in connection `home`; ikectl addresses children by name, so names must be unique"
    );
}

#[test]
fn log_levels() {
    let c = ok(&format!("{BASE}\n[daemon.log]\ndefault = 0\nike = 2\nknl = \"trace\"\n"));
    use crate::logging::Subsystem;
    use tracing::level_filters::LevelFilter;
    assert_eq!(c.daemon.log.get(Subsystem::Ike), LevelFilter::DEBUG);
    assert_eq!(c.daemon.log.get(Subsystem::Knl), LevelFilter::TRACE);
    assert_eq!(c.daemon.log.get(Subsystem::Net), LevelFilter::INFO);
    assert_eq!(
        err(&format!("{BASE}\n[daemon.log]\nike = 5\n")),
        "gw.toml: daemon.log.ike: level 5 (private) would log secrets; they are only written with --keylog"
    );
    assert_eq!(
        err(&format!("{BASE}\n[daemon.log]\nchd = 1\n")),
        "gw.toml: daemon.log.chd: unknown subsystem `chd` (expected default, dmn, ike, cfg, net, enc, knl)"
    );
}

#[test]
fn syntax_errors_give_a_line() {
    let e = err("[connections.home\nversion = 1\n");
    assert!(e.starts_with("gw.toml:1: "), "{e}");
}

#[test]
fn files_are_read_and_bounded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = dir.path().join("iked.toml");
    std::fs::write(&p, BASE).unwrap_or_else(|e| panic!("{e}"));
    assert!(load(&p).is_ok());
    let missing = dir.path().join("nope.toml");
    let e = load(&missing).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(&format!("{}: cannot read: ", missing.display())), "{e}");
    std::fs::write(&p, vec![b'#'; (MAX_FILE_LEN + 1) as usize]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(load(&p).err().map(|e| e.reason), Some(format!("file is larger than {MAX_FILE_LEN} bytes")));
}

#[test]
fn hostile_input_never_panics() {
    // Every prefix of the example, and byte soup: errors, never panics.
    for cut in (0..EXAMPLE.len()).step_by(7) {
        if let Some(t) = EXAMPLE.get(..cut) {
            let _ = parse(t, Path::new("cut.toml"));
        }
    }
    for t in [
        "\u{0}",
        "[[connections]]",
        "connections = 5",
        "[connections.a]\nchildren = []",
        "[secrets]\nike = 1",
    ] {
        assert!(parse(t, Path::new("x.toml")).is_err(), "{t:?}");
    }
}

#[test]
fn ctl_group_is_resolved_at_load_and_an_unknown_one_is_refused() {
    let c = ok(&format!("{BASE}\n[daemon]\nctl_group = \"root\"\n"));
    let g = c.daemon.ctl_group.clone().unwrap_or_else(|| panic!("no ctl_group"));
    assert_eq!((g.name.as_str(), g.gid), ("root", 0));
    let text = render(&c);
    assert!(text.contains("ctl_group = \"root\""), "{text}");
    assert_eq!(parse(&text, Path::new("rendered.toml")).ok(), Some(c));
    assert_eq!(ok(BASE).daemon.ctl_group, None);

    assert_eq!(
        err(&format!("{BASE}\n[daemon]\nctl_group = \"no-such-group-espgw\"\n")),
        "gw.toml: daemon.ctl_group: unknown group `no-such-group-espgw`"
    );
    assert_eq!(
        err(&format!("{BASE}\n[daemon]\nctl_group = \" \"\n")),
        "gw.toml: daemon.ctl_group: empty group name"
    );
}

#[test]
fn half_open_limits_default_to_the_engines_and_are_checked() {
    let d = ok(BASE).daemon.half_open;
    assert_eq!((d.total, d.per_source, d.reserved), (1024, 16, 256));
    let c = ok(&format!("{BASE}\n[daemon]\ninit_limit_half_open = 100\nblock_threshold = 5\n"));
    let h = c.daemon.half_open;
    // The reserve follows a smaller total (half of it at most) unless set.
    assert_eq!((h.total, h.per_source, h.reserved), (100, 5, 50));
    let text = render(&c);
    assert!(
        text.contains("init_limit_half_open = 100") && text.contains("half_open_reserved = 50"),
        "{text}"
    );
    assert_eq!(ok(&format!("{BASE}\n[daemon]\nhalf_open_reserved = 0\n")).daemon.half_open.reserved, 0);
    assert_eq!(
        err(&format!("{BASE}\n[daemon]\ninit_limit_half_open = 0\n")),
        "gw.toml: daemon.init_limit_half_open: must be at least 1 (there is no unlimited)"
    );
    assert_eq!(
        err(&format!("{BASE}\n[daemon]\ninit_limit_half_open = 10\nblock_threshold = 11\n")),
        "gw.toml: daemon.block_threshold: larger than daemon.init_limit_half_open"
    );
    assert_eq!(
        err(&format!("{BASE}\n[daemon]\ninit_limit_half_open = 10\nhalf_open_reserved = 10\n")),
        "gw.toml: daemon.half_open_reserved: must be below daemon.init_limit_half_open (the rest is what %any connections share)"
    );
}

/// `replay_window`: up to what the dataplane keeps; 0 turns anti-replay
/// off, with a warning naming the key; above the limit, refused.
#[test]
fn replay_window_is_bounded_and_zero_is_a_warning() {
    let c = ok(&with("connections.home.children.net", "replay_window = 65536"));
    assert_eq!(c.connections[0].children[0].replay_window, 65_536);
    assert!(c.warnings().is_empty());
    let c = ok(&with("connections.home.children.net", "replay_window = 0"));
    assert_eq!(
        c.warnings(),
        ["connections.home.children.net.replay_window = 0: anti-replay protection is off for its SAs"]
    );
    assert_eq!(
        err(&with("connections.home.children.net", "replay_window = 65537")),
        "gw.toml: connections.home.children.net.replay_window: 65537 is above 65536, the largest window the dataplane keeps"
    );
}

#[test]
fn the_metrics_endpoint_is_an_address_and_port() {
    let daemon = |line: &str| format!("[daemon]\n{line}\n{BASE}");
    let c = ok(&daemon("metrics = \"127.0.0.1:9469\""));
    assert_eq!(c.daemon.metrics, Some("127.0.0.1:9469".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert!(c.daemon.metrics_per_sa);
    assert_eq!(ok(BASE).daemon.metrics, None, "off by default");
    assert_eq!(
        err(&daemon("metrics = \"localhost\"")),
        "gw.toml: daemon.metrics: `localhost` is not an address and port (e.g. 127.0.0.1:9469)"
    );
}
