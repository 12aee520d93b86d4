//! Human-readable output in the style of `swanctl --list-sas`,
//! `--list-conns` and `--stats`.

use super::protocol::*;
use std::fmt::Write as _;

fn secs(label: &str, v: Option<u64>) -> Option<String> {
    v.map(|s| format!("{label} {s}s"))
}

/// `swanctl --list-sas`.
pub fn list_sas(sas: &[IkeSaInfo]) -> String {
    let mut o = String::new();
    if sas.is_empty() {
        o.push_str("no IKE SAs\n");
    }
    for sa in sas {
        if sa.uniqueid == 0 {
            // Child SAs whose ISAKMP SA is gone: no cookies, ports or algorithms.
            let _ = writeln!(o, "{}: no ISAKMP SA, {}, IKEv1", sa.name, sa.state);
            let _ = writeln!(o, "  local  '{}' @ {}", sa.local_id, sa.local_host);
            let _ = writeln!(o, "  remote '{}' @ {}", sa.remote_id, sa.remote_host);
            let _ =
                writeln!(o, "  child SAs keep forwarding until a new ISAKMP SA adopts them or they expire");
            list_children(&mut o, &sa.child_sas);
            continue;
        }
        let _ = writeln!(
            o,
            "{}: #{}, {}, IKEv1, {}_i{} {}_r{}",
            sa.name,
            sa.uniqueid,
            sa.state,
            sa.initiator_spi,
            if sa.initiator { "*" } else { "" },
            sa.responder_spi,
            if sa.initiator { "" } else { "*" }
        );
        let nat = |b: bool| if b { " NAT" } else { "" };
        let _ = writeln!(
            o,
            "  local  '{}' @ {}[{}]{}",
            sa.local_id,
            sa.local_host,
            sa.local_port,
            nat(sa.nat_local)
        );
        let _ = writeln!(
            o,
            "  remote '{}' @ {}[{}]{}",
            sa.remote_id,
            sa.remote_host,
            sa.remote_port,
            nat(sa.nat_remote)
        );
        let _ = writeln!(
            o,
            "  {}-{}/{}/{}/{}",
            sa.encr_alg, sa.encr_keysize, sa.integ_alg, sa.prf_alg, sa.dh_group
        );
        let times: Vec<String> =
            [secs("established", sa.established).map(|s| s + " ago"), secs("rekeying in", sa.rekey_time)]
                .into_iter()
                .flatten()
                .collect();
        if !times.is_empty() {
            let _ = writeln!(o, "  {}", times.join(", "));
        }
        list_children(&mut o, &sa.child_sas);
    }
    o
}

/// The child SA lines of one IKE SA.
fn list_children(o: &mut String, children: &[ChildSaInfo]) {
    for c in children {
        let mut algs = format!("{}-{}", c.encr_alg, c.encr_keysize);
        for a in [&c.integ_alg, &c.dh_group].into_iter().flatten() {
            algs.push('/');
            algs.push_str(a);
        }
        if c.esn {
            algs.push_str("/ESN");
        }
        let _ = writeln!(
            o,
            "  {}: #{}, {}, {}{}, {}:{}",
            c.name,
            c.uniqueid,
            c.state,
            c.mode,
            if c.encap { "-in-UDP" } else { "" },
            c.protocol,
            algs
        );
        let mut times = vec![format!("installed {}s ago", c.install_time)];
        times.extend(secs("rekeying in", c.rekey_time));
        times.extend(secs("expires in", c.life_time));
        let _ = writeln!(o, "    {}", times.join(", "));
        let used = |u: Option<u64>| u.map(|s| format!(", {s}s ago")).unwrap_or_default();
        let _ = writeln!(
            o,
            "    in  {}, {:>10} bytes, {:>8} packets{}",
            c.spi_in,
            c.bytes_in,
            c.packets_in,
            used(c.use_in)
        );
        let _ = writeln!(
            o,
            "    out {}, {:>10} bytes, {:>8} packets{}",
            c.spi_out,
            c.bytes_out,
            c.packets_out,
            used(c.use_out)
        );
        let _ = writeln!(o, "    local  {}", c.local_ts.join(" "));
        let _ = writeln!(o, "    remote {}", c.remote_ts.join(" "));
    }
}

/// `swanctl --list-conns`.
pub fn list_conns(conns: &[ConnectionInfo]) -> String {
    let mut o = String::new();
    if conns.is_empty() {
        o.push_str("no connections loaded\n");
    }
    for c in conns {
        let _ = writeln!(
            o,
            "{}: {}, {}",
            c.name,
            c.version,
            if c.aggressive { "aggressive mode" } else { "main mode" }
        );
        let _ = writeln!(o, "  local:  {} [{}]", c.local_addrs.join(","), c.local_port);
        let _ = writeln!(o, "  remote: {} [{}]", c.remote_addrs.join(","), c.remote_port);
        let _ = writeln!(o, "  proposals: {}", c.proposals.join(", "));
        let _ = writeln!(
            o,
            "  rekeying every {}s, reauth every {}s, dpd delay {}s timeout {}s, keyingtries {}{}",
            c.rekey_time,
            c.reauth_time,
            c.dpd_delay,
            c.dpd_timeout,
            c.keyingtries,
            if c.encap { ", forced UDP encapsulation" } else { "" }
        );
        let _ = writeln!(o, "  local {} authentication:\n    id: {}", c.local_auth, c.local_id);
        let _ = writeln!(o, "  remote {} authentication:\n    id: {}", c.remote_auth, c.remote_id);
        for ch in &c.children {
            let _ = writeln!(
                o,
                "  {}: {}, rekeying every {}s, lifetime {}s, start {}, dpd {}, close {}",
                ch.name,
                ch.mode,
                ch.rekey_time,
                ch.life_time,
                ch.start_action,
                ch.dpd_action,
                ch.close_action
            );
            let _ = writeln!(o, "    esp: {}", ch.esp_proposals.join(", "));
            let _ = writeln!(o, "    local:  {}", ch.local_ts.join(" "));
            let _ = writeln!(o, "    remote: {}", ch.remote_ts.join(" "));
        }
    }
    o
}

/// The engine's counters of certificate refusals, one per reason
/// (`cert-refused-revoked`, ...), shown apart by `stats`.
const CERT_REFUSED: &str = "cert-refused-";

/// `swanctl --stats`.
pub fn stats(s: &Stats) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "uptime: {}s", s.uptime);
    let _ = writeln!(o, "connections: {}", s.connections);
    let _ = writeln!(o, "IKE_SAs: {} total, {} half-open", s.ike_sas, s.ike_sas_half_open);
    let _ = writeln!(o, "CHILD_SAs: {}", s.child_sas);
    let _ = writeln!(
        o,
        "control: {} requests, {} errors, {} callers refused",
        s.ctl_requests, s.ctl_errors, s.ctl_refused
    );
    let (refusals, datagrams): (Vec<_>, Vec<_>) =
        s.ike_datagrams.iter().partition(|(k, _)| k.starts_with(CERT_REFUSED));
    if !datagrams.is_empty() {
        let _ = writeln!(o, "IKE datagrams:");
        for (k, v) in datagrams {
            let _ = writeln!(o, "  {k}: {v}");
        }
    }
    if !refusals.is_empty() {
        let _ = writeln!(o, "certificate refusals (of discarded-certificate):");
        for (k, v) in refusals {
            let _ = writeln!(o, "  {}: {v}", k.trim_start_matches(CERT_REFUSED));
        }
    }
    match &s.dataplane {
        None => o.push_str("dataplane: not attached\n"),
        Some(d) => {
            let _ = writeln!(o, "dataplane: {} rx, {} tx packets", d.rx_packets, d.tx_packets);
            for (reason, n) in &d.drops {
                let _ = writeln!(o, "  drop {reason}: {n}");
            }
        }
    }
    o
}

/// `load-all` result.
pub fn load_summary(s: &LoadSummary) -> String {
    let mut o = String::new();
    for (label, v) in
        [("added", &s.added), ("changed", &s.changed), ("removed", &s.removed), ("unchanged", &s.unchanged)]
    {
        if !v.is_empty() {
            let _ = writeln!(o, "{label}: {}", v.join(", "));
        }
    }
    if o.is_empty() {
        o.push_str("no connections\n");
    }
    if s.certs + s.cacerts + s.crls + s.keys > 0 {
        let _ = writeln!(
            o,
            "credentials: {} certificates, {} CA certificates, {} CRLs, {} private keys",
            s.certs, s.cacerts, s.crls, s.keys
        );
    }
    o
}

/// `list-certs`, as `swanctl --list-certs`: one block per certificate, then
/// per CRL.
pub fn list_certs(certs: &[CertInfo], crls: &[CrlInfo]) -> String {
    let mut o = String::new();
    if certs.is_empty() && crls.is_empty() {
        o.push_str("no certificates\n");
    }
    for c in certs {
        let what = if c.ca { "X.509 CA certificate" } else { "X.509 certificate" };
        let _ = writeln!(o, "{what}: {}", c.path);
        let _ = writeln!(o, "  subject:  \"{}\"", c.subject);
        let _ = writeln!(o, "  issuer:   \"{}\"", c.issuer);
        for san in &c.sans {
            let _ = writeln!(o, "  altNames: {san}");
        }
        let _ = writeln!(o, "  serial:   {}", c.serial);
        let _ = writeln!(o, "  validity: not before {}", c.not_before);
        let _ = writeln!(o, "            not after  {}", c.not_after);
        let key = if c.has_private_key { format!("{}, has private key", c.key) } else { c.key.clone() };
        let _ = writeln!(o, "  pubkey:   {key}");
        if !c.connections.is_empty() {
            let _ = writeln!(o, "  used by:  {}", c.connections.join(", "));
        }
    }
    for c in crls {
        let _ = writeln!(o, "X.509 CRL: {}", c.path);
        let _ = writeln!(o, "  issuer:   \"{}\"", c.issuer);
        let _ = writeln!(o, "  updates:  this {}", c.this_update);
        let _ = writeln!(o, "            next {}", c.next_update.as_deref().unwrap_or("(none)"));
        let _ = writeln!(o, "  revoked:  {} certificates", c.revoked);
    }
    o
}

/// One `ikectl log` line, as charon's log (`[IKE] message`).
pub fn log_line(r: &LogRecord) -> String {
    format!(
        "{}.{:03} {:>5} [{}] {}",
        r.time_ms / 1000,
        r.time_ms % 1000,
        r.level,
        r.subsystem.to_uppercase(),
        r.message
    )
}

/// `list-pols`, as swanctl's: one block per child's policy pair.
pub fn list_pols(pols: &[PolicyInfo]) -> String {
    let mut o = String::new();
    if pols.is_empty() {
        o.push_str("no policies\n");
    }
    for p in pols {
        let on = p.spi_out.as_ref().map_or(String::new(), |s| format!(" on SPI {s}"));
        let _ = writeln!(o, "{}/{}, reqid {}, {}, {}{on}", p.ike, p.name, p.reqid, p.mode, p.state);
        let _ = writeln!(o, "  local:  {}", p.local_ts.join(" "));
        let _ = writeln!(o, "  remote: {}", p.remote_ts.join(" "));
        let _ = writeln!(o, "  packets: {} out, {} in", p.packets_out, p.packets_in);
    }
    o
}

/// One `ikectl monitor` line: time, event, then who and what, as
/// `list-sas` names them (`#N` an IKE SA's uniqueid, `{N}` a child SA's).
pub fn event_line(r: &EventRecord) -> String {
    let what = match &r.event {
        MonitorEvent::IkeUp { ike, uniqueid, local, remote } => {
            format!("ike-up {ike} #{uniqueid} {local} === {remote}")
        }
        MonitorEvent::IkeRekeyed { ike, old, new } => format!("ike-rekeyed {ike} #{old} -> #{new}"),
        MonitorEvent::IkeDown { ike, uniqueid, reason } => format!("ike-down {ike} #{uniqueid} ({reason})"),
        MonitorEvent::ChildUp { ike, child, uniqueid, spi_in, spi_out, local_ts, remote_ts } => format!(
            "child-up {ike}/{child} {{{uniqueid}}} SPIs {spi_in}_i {spi_out}_o {local_ts} === {remote_ts}"
        ),
        MonitorEvent::ChildRekeyed { ike, child, old, new } => {
            format!("child-rekeyed {ike}/{child} {{{old}}} -> {{{new}}}")
        }
        MonitorEvent::ChildExpired { ike, child, uniqueid } => {
            format!("child-expired {ike}/{child} {{{uniqueid}}}")
        }
        MonitorEvent::ChildDown { ike, child, uniqueid, spi_in, spi_out } => {
            format!("child-down {ike}/{child} {{{uniqueid}}} SPIs {spi_in}_i {spi_out}_o")
        }
        MonitorEvent::DpdProbe { ike, uniqueid } => format!("dpd-probe {ike} #{uniqueid}"),
        MonitorEvent::DpdDead { ike, uniqueid } => format!("dpd-dead {ike} #{uniqueid}"),
        MonitorEvent::AuthFailed { ike, remote, reason } => format!(
            "auth-failed {} from {}: {reason}",
            ike.as_deref().unwrap_or("(no connection)"),
            remote.as_deref().unwrap_or("(unknown)")
        ),
        MonitorEvent::Acquire { ike, child, reqid } => format!("acquire {ike}/{child} reqid {reqid}"),
    };
    format!("{}.{:03} {what}", r.time_ms / 1000, r.time_ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pols_names_the_child_its_state_and_sa() {
        let p = PolicyInfo {
            name: "net".into(),
            ike: "gw".into(),
            reqid: 1,
            mode: "TUNNEL".into(),
            state: "INSTALLED".into(),
            local_ts: vec!["10.1.0.0/16".into()],
            remote_ts: vec!["10.2.0.0/16".into()],
            spi_out: Some("c1a2b3c4".into()),
            packets_out: 7,
            packets_in: 5,
        };
        let trap = PolicyInfo { state: "TRAP".into(), spi_out: None, reqid: 2, ..p.clone() };
        assert_eq!(
            list_pols(&[p, trap]),
            "gw/net, reqid 1, TUNNEL, INSTALLED on SPI c1a2b3c4\n  local:  10.1.0.0/16\n  remote: 10.2.0.0/16\n  \
             packets: 7 out, 5 in\ngw/net, reqid 2, TUNNEL, TRAP\n  local:  10.1.0.0/16\n  remote: 10.2.0.0/16\n  \
             packets: 7 out, 5 in\n"
        );
        assert_eq!(list_pols(&[]), "no policies\n");
    }

    #[test]
    fn list_certs_shows_every_field() {
        let cert = CertInfo {
            path: "/etc/iked/x509/gw.pem".into(),
            source: "x509".into(),
            subject: "O=Test, CN=gw".into(),
            issuer: "O=Test, CN=ca".into(),
            sans: vec!["DNS:gw.example".into(), "IP:192.0.2.1".into()],
            serial: "10:00".into(),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            key: "RSA-2048".into(),
            ca: false,
            has_private_key: true,
            connections: vec!["home".into()],
        };
        let crl = CrlInfo {
            path: "/etc/iked/x509crl/ca.crl".into(),
            issuer: "O=Test, CN=ca".into(),
            this_update: "2026-01-01T00:00:00Z".into(),
            next_update: None,
            revoked: 2,
        };
        assert_eq!(
            list_certs(&[cert], &[crl]),
            "X.509 certificate: /etc/iked/x509/gw.pem\n  subject:  \"O=Test, CN=gw\"\n  issuer:   \"O=Test, CN=ca\"\n  \
             altNames: DNS:gw.example\n  altNames: IP:192.0.2.1\n  serial:   10:00\n  validity: not before \
             2026-01-01T00:00:00Z\n            not after  2027-01-01T00:00:00Z\n  pubkey:   RSA-2048, has private key\n  \
             used by:  home\nX.509 CRL: /etc/iked/x509crl/ca.crl\n  issuer:   \"O=Test, CN=ca\"\n  updates:  this \
             2026-01-01T00:00:00Z\n            next (none)\n  revoked:  2 certificates\n"
        );
        assert_eq!(list_certs(&[], &[]), "no certificates\n");
    }

    #[test]
    fn list_sas_looks_like_swanctl() {
        let sa = IkeSaInfo {
            name: "home".into(),
            uniqueid: 3,
            state: "ESTABLISHED".into(),
            local_host: "192.0.2.1".into(),
            local_port: 500,
            local_id: "192.0.2.1".into(),
            remote_host: "198.51.100.2".into(),
            remote_port: 4500,
            remote_id: "@b.example".into(),
            initiator: true,
            initiator_spi: "0011223344556677".into(),
            responder_spi: "8899aabbccddeeff".into(),
            nat_remote: true,
            encr_alg: "AES_CBC".into(),
            encr_keysize: 256,
            integ_alg: "HMAC_SHA2_256_128".into(),
            prf_alg: "PRF_HMAC_SHA2_256".into(),
            dh_group: "MODP_2048".into(),
            established: Some(120),
            rekey_time: Some(13_000),
            child_sas: vec![ChildSaInfo {
                name: "net".into(),
                uniqueid: 4,
                state: "INSTALLED".into(),
                mode: "TUNNEL".into(),
                protocol: "ESP".into(),
                encap: true,
                spi_in: "c0ffee01".into(),
                spi_out: "c0ffee02".into(),
                encr_alg: "AES_GCM_16".into(),
                encr_keysize: 128,
                dh_group: Some("MODP_2048".into()),
                bytes_in: 1234,
                packets_in: 10,
                use_in: Some(2),
                bytes_out: 5678,
                packets_out: 12,
                rekey_time: Some(3000),
                life_time: Some(3300),
                install_time: 110,
                local_ts: vec!["10.1.0.0/16".into()],
                remote_ts: vec!["10.2.0.0/16".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let want = "\
home: #3, ESTABLISHED, IKEv1, 0011223344556677_i* 8899aabbccddeeff_r
  local  '192.0.2.1' @ 192.0.2.1[500]
  remote '@b.example' @ 198.51.100.2[4500] NAT
  AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048
  established 120s ago, rekeying in 13000s
  net: #4, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128/MODP_2048
    installed 110s ago, rekeying in 3000s, expires in 3300s
    in  c0ffee01,       1234 bytes,       10 packets, 2s ago
    out c0ffee02,       5678 bytes,       12 packets
    local  10.1.0.0/16
    remote 10.2.0.0/16
";
        assert_eq!(list_sas(&[sa]), want);
        assert_eq!(list_sas(&[]), "no IKE SAs\n");
    }

    #[test]
    fn stats_and_summaries() {
        let s = Stats { uptime: 5, connections: 2, ctl_requests: 7, ctl_errors: 1, ..Default::default() };
        assert_eq!(
            stats(&s),
            "uptime: 5s\nconnections: 2\nIKE_SAs: 0 total, 0 half-open\nCHILD_SAs: 0\ncontrol: 7 requests, 1 errors, 0 callers refused\ndataplane: not attached\n"
        );
        let mut d = std::collections::BTreeMap::new();
        d.insert("received".to_owned(), 9);
        d.insert("cert-refused-revoked".to_owned(), 2);
        d.insert("cert-refused-expired".to_owned(), 0);
        let s = Stats { ike_datagrams: d, ..s };
        assert_eq!(
            stats(&s),
            "uptime: 5s\nconnections: 2\nIKE_SAs: 0 total, 0 half-open\nCHILD_SAs: 0\ncontrol: 7 requests, 1 errors, \
             0 callers refused\nIKE datagrams:\n  received: 9\ncertificate refusals (of discarded-certificate):\n  \
             expired: 0\n  revoked: 2\ndataplane: not attached\n"
        );
        let l = LoadSummary {
            added: vec!["a".into()],
            unchanged: vec!["b".into(), "c".into()],
            ..Default::default()
        };
        assert_eq!(load_summary(&l), "added: a\nunchanged: b, c\n");
        let l = LoadSummary { certs: 2, cacerts: 1, crls: 1, keys: 1, ..l };
        assert_eq!(
            load_summary(&l),
            "added: a\nunchanged: b, c\ncredentials: 2 certificates, 1 CA certificates, 1 CRLs, 1 private keys\n"
        );
        let r = LogRecord {
            time_ms: 1_700_000_000_042,
            level: "INFO".into(),
            subsystem: "ike".into(),
            message: "up".into(),
        };
        assert_eq!(log_line(&r), "1700000000.042  INFO [IKE] up");
    }
}
