//! Writes a [`Config`] back as TOML with every default spelled out — what
//! `iked --check-config FILE --print` shows, and the round-trip test's
//! other half (render, parse again, compare).

use super::*;
use crate::logging::Subsystem;
use toml::{Table, Value};

fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

fn list<T: std::fmt::Display>(v: &[T]) -> Value {
    Value::Array(v.iter().map(s).collect())
}

fn secs(d: Duration) -> Value {
    s(value::format_duration(d))
}

fn count(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn level_name(l: tracing::level_filters::LevelFilter) -> Value {
    s(l.to_string().to_ascii_lowercase())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The configuration as TOML (secrets included, as `0x` hex).
pub fn render(c: &Config) -> String {
    let mut root = Table::new();
    let d = &c.daemon;
    let mut daemon = Table::new();
    daemon.insert("sadb".into(), s(d.sadb.display()));
    daemon.insert("control_socket".into(), s(d.control_socket.display()));
    if let Some(g) = &d.ctl_group {
        daemon.insert("ctl_group".into(), s(&g.name));
    }
    daemon.insert("listen".into(), list(&d.listen));
    daemon.insert("port".into(), Value::Integer(d.port.into()));
    daemon.insert("port_nat_t".into(), Value::Integer(d.port_nat_t.into()));
    if let Some(k) = &d.keylog {
        daemon.insert("keylog".into(), s(k.display()));
    }
    daemon.insert("delete_sas_on_exit".into(), Value::Boolean(d.delete_sas_on_exit));
    daemon.insert("init_limit_half_open".into(), count(d.half_open.total as u64));
    daemon.insert("block_threshold".into(), count(d.half_open.per_source as u64));
    daemon.insert("half_open_reserved".into(), count(d.half_open.reserved as u64));
    if let Some(m) = &d.metrics {
        daemon.insert("metrics".into(), s(m));
    }
    daemon.insert("metrics_per_sa".into(), Value::Boolean(d.metrics_per_sa));
    daemon.insert("swanctl_dir".into(), s(d.swanctl_dir.display()));
    let mut log = Table::new();
    log.insert("default".into(), level_name(d.log.default));
    for sub in Subsystem::ALL {
        log.insert(sub.name().into(), level_name(d.log.get(sub)));
    }
    daemon.insert("log".into(), Value::Table(log));
    root.insert("daemon".into(), Value::Table(daemon));

    let mut conns = Table::new();
    for conn in &c.connections {
        let mut t = Table::new();
        t.insert("version".into(), Value::Integer(1));
        t.insert("local_addrs".into(), list(&conn.local_addrs));
        t.insert("remote_addrs".into(), list(&conn.remote_addrs));
        t.insert("local_port".into(), Value::Integer(conn.local_port.into()));
        t.insert("remote_port".into(), Value::Integer(conn.remote_port.into()));
        let props: Vec<&str> = conn.proposals.iter().map(|p| p.text.as_str()).collect();
        t.insert("proposals".into(), list(&props));
        t.insert("aggressive".into(), Value::Boolean(conn.aggressive));
        t.insert("encap".into(), Value::Boolean(conn.encap));
        t.insert("prefer_configured_proposals".into(), Value::Boolean(conn.prefer_configured_proposals));
        t.insert("dpd_delay".into(), secs(conn.dpd_delay));
        t.insert("dpd_timeout".into(), secs(conn.dpd_timeout));
        t.insert("rekey_time".into(), secs(conn.rekey_time));
        t.insert("reauth_time".into(), secs(conn.reauth_time));
        t.insert("over_time".into(), secs(conn.over_time));
        t.insert("rand_time".into(), secs(conn.rand_time));
        t.insert("keyingtries".into(), Value::Integer(conn.keyingtries.into()));
        t.insert(
            "send_cert".into(),
            s(match conn.send_cert {
                ike::engine::SendCert::IfAsked => "ifasked",
                ike::engine::SendCert::Always => "always",
                ike::engine::SendCert::Never => "never",
            }),
        );
        t.insert("send_certreq".into(), Value::Boolean(conn.send_certreq));
        for (name, end) in [("local", &conn.local), ("remote", &conn.remote)] {
            let mut e = Table::new();
            e.insert("auth".into(), s(validate::auth_name(end.auth)));
            if end.id != ConfigId::Any {
                e.insert("id".into(), s(&end.id));
            }
            // Written as they resolve again: relative to their subdirectory
            // of swanctl_dir when inside it.
            let paths = |v: &[PathBuf], sub: &str| {
                let base = d.swanctl_dir.join(sub);
                Value::Array(v.iter().map(|p| s(p.strip_prefix(&base).unwrap_or(p).display())).collect())
            };
            if !end.certs.is_empty() {
                e.insert("certs".into(), paths(&end.certs, "x509"));
            }
            if !end.cacerts.is_empty() {
                e.insert("cacerts".into(), paths(&end.cacerts, "x509ca"));
            }
            t.insert(name.into(), Value::Table(e));
        }
        let mut children = Table::new();
        for ch in &conn.children {
            let mut x = Table::new();
            x.insert("local_ts".into(), list(&ch.local_ts));
            x.insert("remote_ts".into(), list(&ch.remote_ts));
            let props: Vec<&str> = ch.esp_proposals.iter().map(|p| p.text.as_str()).collect();
            x.insert("esp_proposals".into(), list(&props));
            x.insert(
                "mode".into(),
                s(match ch.mode {
                    ike::engine::ChildMode::Tunnel => "tunnel",
                    ike::engine::ChildMode::Transport => "transport",
                }),
            );
            x.insert(
                "start_action".into(),
                s(match ch.start_action {
                    StartAction::None => "none",
                    StartAction::Trap => "trap",
                    StartAction::Start => "start",
                }),
            );
            x.insert(
                "dpd_action".into(),
                s(match ch.dpd_action {
                    PeerGoneAction::Clear => "clear",
                    PeerGoneAction::Trap => "trap",
                    PeerGoneAction::Restart => "restart",
                }),
            );
            x.insert(
                "close_action".into(),
                s(match ch.close_action {
                    PeerGoneAction::Clear => "none",
                    PeerGoneAction::Trap => "trap",
                    PeerGoneAction::Restart => "start",
                }),
            );
            x.insert("rekey_time".into(), secs(ch.rekey_time));
            x.insert("life_time".into(), secs(ch.life_time));
            x.insert("rand_time".into(), secs(ch.rand_time));
            x.insert("rekey_bytes".into(), count(ch.rekey_bytes));
            x.insert("life_bytes".into(), count(ch.life_bytes));
            x.insert("rand_bytes".into(), count(ch.rand_bytes));
            x.insert("rekey_packets".into(), count(ch.rekey_packets));
            x.insert("life_packets".into(), count(ch.life_packets));
            x.insert("rand_packets".into(), count(ch.rand_packets));
            x.insert("replay_window".into(), Value::Integer(ch.replay_window.into()));
            children.insert(ch.name.clone(), Value::Table(x));
        }
        t.insert("children".into(), Value::Table(children));
        conns.insert(conn.name.clone(), Value::Table(t));
    }
    root.insert("connections".into(), Value::Table(conns));

    let mut secrets = Table::new();
    for sec in &c.secrets {
        let mut t = Table::new();
        for (i, id) in sec.ids.iter().enumerate() {
            let k = if i == 0 { "id".to_owned() } else { format!("id-{i}") };
            t.insert(k, s(id));
        }
        t.insert("secret".into(), s(format!("0x{}", hex(&sec.secret.0))));
        secrets.insert(sec.name.clone(), Value::Table(t));
    }
    root.insert("secrets".into(), Value::Table(secrets));
    toml::to_string(&root).unwrap_or_default()
}
