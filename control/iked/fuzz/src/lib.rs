//! Seeds shared by the targets' corpus generator: genuine configuration files and
//! genuine ikectl request and response lines.

use iked::ctl::*;
use std::collections::BTreeMap;

/// The shipped example configuration.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../../scripts/iked.example.toml");

/// A minimal valid configuration (one connection, one child, one secret).
pub const MINIMAL_CONFIG: &str = r#"
[connections.home]
version = 1
remote_addrs = "198.18.0.2"
local.auth = "psk"
remote.auth = "psk"
remote.id = "@b.example"

[connections.home.children.net]
local_ts = "198.18.1.0/24"
remote_ts = "198.18.2.0/24"

[secrets.ike-home]
id = "@b.example"
secret = "s3cret"
"#;

/// A configuration exercising IPv6, aggressive mode, transport mode, ranges and ports.
pub const V6_CONFIG: &str = r#"
[daemon]
listen = ["2001:db8::1"]
keylog = "/tmp/keys"

[daemon.log]
default = "info"
ike = 3

[connections.v6]
version = 1
local_addrs = ["2001:db8::1"]
remote_addrs = "2001:db8::2, 2001:db8:1::/64"
aggressive = true
encap = true
proposals = "aes128-sha1-modp2048,aes256-sha384-ecp384"
dpd_delay = "10s"
rekey_time = "1h"
reauth_time = "2h"

[connections.v6.local]
auth = "psk"
id = "fqdn:a.example"

[connections.v6.remote]
auth = "psk"
id = "2001:db8::2"

[connections.v6.children.t]
mode = "transport"
local_ts = "2001:db8::1[tcp/443]"
remote_ts = ["2001:db8::2[udp/1000]", "dynamic"]
esp_proposals = ["aes128gcm16-modp3072", "aes256-sha256-modp3072"]
start_action = "trap"
dpd_action = "restart"
rekey_bytes = "1G"
replay_window = 128

[secrets.ike-v6]
id-a = "fqdn:a.example"
id-b = "2001:db8::2"
secret = "0x0011223344556677"
"#;

/// Request lines as ikectl sends them, one per command.
pub fn request_lines() -> Vec<String> {
    let target = |child: Option<&str>, ike: Option<&str>| Target {
        child: child.map(str::to_owned),
        ike: ike.map(str::to_owned),
    };
    [
        Command::ListSas { ike: None },
        Command::ListSas { ike: Some("home".into()) },
        Command::ListConns {},
        Command::Initiate(target(Some("net"), None)),
        Command::Terminate(target(None, Some("home"))),
        Command::LoadAll {},
        Command::Stats {},
        Command::Log {},
    ]
    .into_iter()
    .map(|command| serde_json::to_string(&Request { version: VERSION, command }).unwrap_or_default())
    .collect()
}

/// Response lines as iked sends them, one per reply type.
pub fn response_lines() -> Vec<String> {
    let child = ChildSaInfo {
        name: "net".into(),
        uniqueid: 2,
        state: "INSTALLED".into(),
        mode: "TUNNEL".into(),
        protocol: "ESP".into(),
        spi_in: "c0ffee01".into(),
        spi_out: "c0ffee02".into(),
        encr_alg: "AES_GCM_16".into(),
        encr_keysize: 128,
        integ_alg: Some("HMAC_SHA2_256_128".into()),
        dh_group: Some("MODP_2048".into()),
        bytes_in: 1000,
        packets_in: 10,
        use_in: Some(1),
        rekey_time: Some(3000),
        life_time: Some(3600),
        install_time: 5,
        local_ts: vec!["198.18.1.0/24".into()],
        remote_ts: vec!["198.18.2.0/24".into()],
        ..ChildSaInfo::default()
    };
    let sa = IkeSaInfo {
        name: "home".into(),
        uniqueid: 1,
        state: "ESTABLISHED".into(),
        local_host: "198.18.0.1".into(),
        local_port: 500,
        remote_host: "198.18.0.2".into(),
        remote_port: 4500,
        remote_id: "b.example".into(),
        initiator: true,
        initiator_spi: "0011223344556677".into(),
        responder_spi: "8899aabbccddeeff".into(),
        nat_remote: true,
        encr_alg: "AES_CBC".into(),
        encr_keysize: 256,
        established: Some(12),
        child_sas: vec![child],
        ..IkeSaInfo::default()
    };
    let conn = ConnectionInfo {
        name: "home".into(),
        version: "IKEv1".into(),
        local_addrs: vec!["%any".into()],
        remote_addrs: vec!["198.18.0.2".into()],
        local_port: 500,
        remote_port: 500,
        proposals: vec!["aes256-sha256-modp2048".into()],
        children: vec![ChildConfigInfo {
            name: "net".into(),
            mode: "TUNNEL".into(),
            esp_proposals: vec!["aes128gcm16".into()],
            ..ChildConfigInfo::default()
        }],
        ..ConnectionInfo::default()
    };
    let mut drops = BTreeMap::new();
    drops.insert("drop-replay".to_owned(), 3);
    [
        Reply::Sas { ike_sas: vec![sa] },
        Reply::Conns { connections: vec![conn] },
        Reply::Done { message: "initiated".into() },
        Reply::Loaded(LoadSummary {
            added: vec!["a".into()],
            removed: vec!["b".into()],
            ..Default::default()
        }),
        Reply::Stats(Stats {
            uptime: 10,
            connections: 1,
            dataplane: Some(DataplaneStats { rx_packets: 5, tx_packets: 4, drops }),
            ..Stats::default()
        }),
        Reply::Log(LogRecord {
            time_ms: 1,
            level: "INFO".into(),
            subsystem: "ike".into(),
            message: "hello".into(),
        }),
        Reply::LogLagged { missed: 7 },
        Reply::Error(CtlError::new(ErrorCode::BadRequest, "no")),
    ]
    .into_iter()
    .map(|reply| serde_json::to_string(&Response::new(reply)).unwrap_or_default())
    .collect()
}
