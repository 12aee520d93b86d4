//! espd's configuration file (TOML). Every error names the file, the key and the reason.
//!
//! ```toml
//! eal = ["-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
//!        "--vdev", "net_af_packet0,iface=veth-out", "--vdev", "net_af_packet1,iface=veth-in"]
//!
//! [dataplane]
//! burst = 32
//! stats_interval = 1.0
//!
//! [sadb]
//! path = "/run/espgw/sadb"
//!
//! [[ports]]
//! name = "outside"
//! device = "net_af_packet0"
//! role = "outside"
//! addresses = ["198.18.0.1/24"]
//!
//! [[ports]]
//! name = "inside"
//! device = "net_af_packet1"
//! role = "inside"
//! addresses = ["198.18.1.1/24"]
//!
//! [[routes]]
//! prefix = "198.19.1.0/24"
//! via = "198.18.0.2"
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A configuration error: `file: key: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The key path (`ports[1].addresses[0]`), empty for the whole file.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// What traffic a port carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The protected side: plaintext from and to hosts.
    Inside,
    /// The unprotected side: ESP to and from peers, IKE to the host stack.
    Outside,
    /// Both on one port ("one-arm").
    Both,
}

impl Role {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Role::Inside => "inside",
            Role::Outside => "outside",
            Role::Both => "both",
        }
    }
}

/// Settings of the worker loops.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataplane {
    /// Packets per RX/TX burst.
    pub burst: u16,
    /// Mbufs in the packet pool.
    pub mbufs: u32,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Seconds between statistics tables (0: only at exit).
    pub stats_interval: f64,
    /// Crypto backend for SAs that leave the choice to the dataplane: `ipsec-mb` or `rust`.
    pub backend: String,
    /// Spread flows over the workers' RX queues by RSS where the device supports it.
    pub rss: bool,
    /// Idle workers: `poll` (spin, the default) or `adaptive` (back off to short sleeps;
    /// for shared vCPUs).
    pub idle: String,
}

impl Default for Dataplane {
    fn default() -> Self {
        Self {
            burst: 32,
            mbufs: 16383,
            rx_desc: 1024,
            tx_desc: 1024,
            stats_interval: 1.0,
            backend: "ipsec-mb".into(),
            rss: true,
            idle: "poll".into(),
        }
    }
}

/// Where the SA database is, and its capacities if espd creates it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SadbSettings {
    /// The region file, `/run/espgw/sadb` by default (`sadb::DEFAULT_PATH`, in a 0700
    /// directory espd creates if missing). Whatever the path, only a regular file owned by
    /// espd's user with mode 0600 is attached.
    pub path: PathBuf,
    /// SA slots when creating.
    pub sas: u32,
    /// Policy slots when creating.
    pub policies: u32,
    /// Reader slots when creating.
    pub readers: u32,
    /// The largest anti-replay window an SA may have, when creating (a
    /// multiple of 64 up to 65,536; iked's `replay_window` must fit).
    pub max_replay_window: u32,
}

impl Default for SadbSettings {
    fn default() -> Self {
        let c = sadb::Capacities::default();
        Self {
            path: sadb::DEFAULT_PATH.into(),
            sas: c.sas,
            policies: c.policies,
            readers: c.readers,
            max_replay_window: c.max_replay_window,
        }
    }
}

/// One port.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortSettings {
    /// Our name for it (used by routes and neighbours).
    pub name: String,
    /// The DPDK device name (`net_af_packet0`, `0000:00:04.0`, `net_virtio_user0`).
    pub device: String,
    /// What it carries.
    pub role: Role,
    /// The gateway's addresses on it, with prefix length (`198.18.0.1/24`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Largest IP packet the link carries.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// The MAC to give the device at start (`02:00:00:00:00:01`; unicast, not all zeros);
    /// absent: the device's own.
    #[serde(default)]
    pub mac: Option<String>,
}

fn default_mtu() -> u16 {
    1500
}

/// Traffic for the gateway itself that is not ESP goes to a TAP device.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionSettings {
    /// The TAP device's DPDK name (declared in `eal`: `--vdev net_tap0,iface=espgw0`).
    pub device: String,
    /// The port whose traffic for the gateway goes to the TAP and which carries what the
    /// host sends back.
    pub port: String,
    /// Whether espd sets up the TAP's host side at start: IPv6 on, TX checksum offload off,
    /// link up, the addresses (`crate::host`). False leaves the interface as DPDK made it.
    #[serde(default = "default_true")]
    pub setup: bool,
    /// The addresses the host side gets (with prefix length); absent: those of `port`.
    #[serde(default)]
    pub addresses: Option<Vec<String>>,
}

fn default_true() -> bool {
    true
}

/// A route.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Destination prefix.
    pub prefix: String,
    /// Next hop (absent: on-link).
    pub via: Option<IpAddr>,
    /// The port (default: the port whose subnet holds `via`).
    pub port: Option<String>,
}

/// A static neighbour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborSettings {
    /// Its address.
    pub ip: IpAddr,
    /// Its MAC, `02:00:00:00:00:01`.
    pub mac: String,
    /// The port it is on.
    pub port: String,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// EAL arguments (the command line's `--` part, when given, replaces them).
    #[serde(default)]
    pub eal: Vec<String>,
    /// Worker settings.
    #[serde(default)]
    pub dataplane: Dataplane,
    /// The SA database.
    #[serde(default)]
    pub sadb: SadbSettings,
    /// Ports, in the order workers poll them.
    pub ports: Vec<PortSettings>,
    /// The exception path to the host stack.
    pub exception: Option<ExceptionSettings>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
    /// Static neighbours.
    #[serde(default)]
    pub neighbors: Vec<NeighborSettings>,
}

/// A parsed prefix: address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The address as written (host bits allowed for interface addresses).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Parses `ADDR/LEN`.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (a, l) = s.split_once('/').ok_or_else(|| format!("{s:?} is not ADDRESS/LENGTH"))?;
        let addr: IpAddr = a.parse().map_err(|_| format!("{a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = l
            .parse::<u8>()
            .ok()
            .filter(|&v| v <= max)
            .ok_or_else(|| format!("prefix length {l:?} is not 0..={max}"))?;
        Ok(Prefix { addr, len })
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }
}

/// Parses a MAC a device is to have: `parse_mac`, and unicast, and not all zeros.
pub fn parse_unicast_mac(s: &str) -> Result<[u8; 6], String> {
    let mac = parse_mac(s)?;
    if mac[0] & 1 != 0 {
        return Err(format!("{s:?} is a multicast address (the first octet's lowest bit is set)"));
    }
    if mac == [0; 6] {
        return Err(format!("{s:?} is all zeros"));
    }
    Ok(mac)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (six hex pairs separated by ':')"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates a file's text.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: path.into(),
            key: String::new(),
            reason: e.to_string().lines().next().unwrap_or("invalid TOML").to_string(),
        })?;
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let reason = e.into_inner().message().to_string();
            ConfigError { file: path.into(), key: if key == "." { String::new() } else { key }, reason }
        })?;
        cfg.validate().map_err(|(key, reason)| ConfigError { file: path.into(), key, reason })?;
        Ok(cfg)
    }

    /// The addresses the exception TAP's host side gets, each with the key it comes from:
    /// `exception.addresses`, or the exception port's addresses. Empty without `[exception]`.
    pub fn exception_addresses(&self) -> Vec<crate::host::HostAddress> {
        let Some(x) = &self.exception else { return Vec::new() };
        let (list, key) = match &x.addresses {
            Some(a) => (a.as_slice(), "exception.addresses".to_string()),
            None => match self.ports.iter().position(|p| p.name == x.port) {
                Some(i) => (self.ports[i].addresses.as_slice(), format!("ports[{i}].addresses")),
                None => return Vec::new(),
            },
        };
        list.iter()
            .enumerate()
            .filter_map(|(j, a)| {
                Prefix::parse(a)
                    .ok()
                    .map(|prefix| crate::host::HostAddress { prefix, key: format!("{key}[{j}]") })
            })
            .collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let d = &self.dataplane;
        if d.burst == 0 || usize::from(d.burst) > crate::fwd::MAX_BURST {
            return Err((
                "dataplane.burst".into(),
                format!("{} is outside 1..={}", d.burst, crate::fwd::MAX_BURST),
            ));
        }
        if !matches!(d.backend.as_str(), "ipsec-mb" | "rust") {
            return Err((
                "dataplane.backend".into(),
                format!("{:?} is neither \"ipsec-mb\" nor \"rust\"", d.backend),
            ));
        }
        if crate::gw::idle::IdleMode::parse(&d.idle).is_none() {
            return Err((
                "dataplane.idle".into(),
                format!("{:?} is neither \"poll\" nor \"adaptive\"", d.idle),
            ));
        }
        if !(d.stats_interval >= 0.0 && d.stats_interval.is_finite()) {
            return Err(("dataplane.stats_interval".into(), "must be a number of seconds, 0 or more".into()));
        }
        if self.ports.is_empty() {
            return Err(("ports".into(), "at least one port is needed".into()));
        }
        let mut subnets = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return Err((format!("ports[{i}].name"), format!("{:?} is used by another port", p.name)));
            }
            if self.ports[..i].iter().any(|q| q.device == p.device) {
                return Err((
                    format!("ports[{i}].device"),
                    format!("{:?} is used by another port", p.device),
                ));
            }
            if p.mtu < 1280 {
                return Err((format!("ports[{i}].mtu"), format!("{} is below 1280", p.mtu)));
            }
            if let Some(mac) = &p.mac {
                parse_unicast_mac(mac).map_err(|e| (format!("ports[{i}].mac"), e))?;
            }
            for (j, a) in p.addresses.iter().enumerate() {
                let pf = Prefix::parse(a).map_err(|r| (format!("ports[{i}].addresses[{j}]"), r))?;
                subnets.push((p.name.clone(), pf));
            }
        }
        let has = |role: Role| self.ports.iter().any(|p| p.role == role || p.role == Role::Both);
        if !has(Role::Inside) || !has(Role::Outside) {
            return Err((
                "ports".into(),
                "need an inside and an outside port (or one with role \"both\")".into(),
            ));
        }
        let port_named = |name: &str| self.ports.iter().any(|p| p.name == name);
        if let Some(x) = &self.exception {
            if !port_named(&x.port) {
                return Err(("exception.port".into(), format!("no port named {:?}", x.port)));
            }
            if self.ports.iter().any(|p| p.device == x.device) {
                return Err(("exception.device".into(), format!("{:?} is also a port", x.device)));
            }
            if let Some(addrs) = &x.addresses {
                for (j, a) in addrs.iter().enumerate() {
                    Prefix::parse(a).map_err(|r| (format!("exception.addresses[{j}]"), r))?;
                }
                if !x.setup {
                    return Err((
                        "exception.addresses".into(),
                        "only used with setup = true (espd sets no address otherwise)".into(),
                    ));
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let pf = Prefix::parse(&r.prefix).map_err(|e| (format!("routes[{i}].prefix"), e))?;
            if let Some(port) = &r.port {
                if !port_named(port) {
                    return Err((format!("routes[{i}].port"), format!("no port named {port:?}")));
                }
            }
            match r.via {
                Some(via) if via.is_ipv4() != pf.addr.is_ipv4() => {
                    return Err((
                        format!("routes[{i}].via"),
                        "next hop and prefix are of different families".into(),
                    ));
                }
                Some(via) if r.port.is_none() && !subnets.iter().any(|(_, s)| s.contains(via)) => {
                    return Err((
                        format!("routes[{i}].via"),
                        format!("{via} is on no port's subnet; add port = \"...\""),
                    ));
                }
                None if r.port.is_none() => {
                    return Err((format!("routes[{i}]"), "an on-link route needs port = \"...\"".into()));
                }
                _ => {}
            }
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            parse_mac(&n.mac).map_err(|e| (format!("neighbors[{i}].mac"), e))?;
            if !port_named(&n.port) {
                return Err((format!("neighbors[{i}].port"), format!("no port named {:?}", n.port)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
eal = ["-l", "0,1", "--no-pci"]
[dataplane]
burst = 32
[sadb]
path = "/dev/shm/x"
[[ports]]
name = "outside"
device = "net_af_packet0"
role = "outside"
addresses = ["198.18.0.1/24", "2001:db8::1/64"]
[[ports]]
name = "inside"
device = "net_af_packet1"
role = "inside"
addresses = ["198.18.1.1/24"]
[exception]
device = "net_tap0"
port = "outside"
[[routes]]
prefix = "198.19.1.0/24"
via = "198.18.0.2"
[[neighbors]]
ip = "198.18.0.2"
mac = "02:00:00:00:00:02"
port = "outside"
"#;

    /// Each (from, to, error): the sample with `from` replaced by `to` is refused with an
    /// error that starts with `error`.
    fn each_refused(cases: &[(&str, &str, &str)]) {
        for (from, to, want) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "{from} not in the sample");
            let got = err(&text);
            assert!(got.starts_with(want), "{from} -> {to}:\n got  {got}\n want {want}");
        }
    }

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("espd.toml")).unwrap_err().to_string()
    }

    #[test]
    fn good_file_parses_with_defaults() {
        let c = Config::parse(GOOD, Path::new("espd.toml")).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[1].role, Role::Inside);
        assert_eq!(c.ports[0].mtu, 1500);
        assert_eq!(c.dataplane.mbufs, 16383);
        assert_eq!(c.routes[0].via, Some("198.18.0.2".parse().unwrap()));
        assert_eq!(parse_mac(&c.neighbors[0].mac).unwrap(), [2, 0, 0, 0, 0, 2]);
        assert!(Prefix::parse("198.18.0.1/24").unwrap().contains("198.18.0.77".parse().unwrap()));
        assert!(!Prefix::parse("198.18.0.1/24").unwrap().contains("198.18.1.77".parse().unwrap()));
        assert!(Prefix::parse("2001:db8::1/64").unwrap().contains("2001:db8::99".parse().unwrap()));
    }

    #[test]
    fn each_error_names_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("burst = 32", "burst = 0", "espd.toml: dataplane.burst: 0 is outside 1..=64"),
            (
                "burst = 32",
                "bust = 32",
                "espd.toml: dataplane.bust: unknown field `bust`, expected one of `burst`",
            ),
            ("path = \"/dev/shm/x\"", "path = 5", "espd.toml: sadb.path: invalid type: integer `5`"),
            ("role = \"inside\"", "role = \"middle\"", "espd.toml: ports[1].role: unknown variant `middle`"),
            (
                "\"198.18.1.1/24\"",
                "\"198.18.1.1/33\"",
                "espd.toml: ports[1].addresses[0]: prefix length \"33\" is not 0..=32",
            ),
            (
                "\"198.18.1.1/24\"",
                "\"198.18.1.300/24\"",
                "espd.toml: ports[1].addresses[0]: \"198.18.1.300\" is not an IP address",
            ),
            (
                "device = \"net_af_packet1\"",
                "device = \"net_af_packet0\"",
                "espd.toml: ports[1].device: \"net_af_packet0\" is used by another port",
            ),
            (
                "port = \"outside\"\n[[routes]]",
                "port = \"nowhere\"\n[[routes]]",
                "espd.toml: exception.port: no port named \"nowhere\"",
            ),
            (
                "via = \"198.18.0.2\"",
                "via = \"203.0.113.1\"",
                "espd.toml: routes[0].via: 203.0.113.1 is on no port's subnet",
            ),
            (
                "via = \"198.18.0.2\"",
                "via = \"2001:db8::2\"",
                "espd.toml: routes[0].via: next hop and prefix are of different families",
            ),
            (
                "mac = \"02:00:00:00:00:02\"",
                "mac = \"02:00:00:00:02\"",
                "espd.toml: neighbors[0].mac: \"02:00:00:00:02\" is not a MAC address",
            ),
            (
                "role = \"inside\"",
                "role = \"outside\"",
                "espd.toml: ports: need an inside and an outside port",
            ),
        ];
        each_refused(cases);
        assert!(err("ports = [").starts_with("espd.toml: "), "TOML syntax errors name the file");
        assert_eq!(err("eal = []"), "espd.toml: missing field `ports`");
        let bad_idle = GOOD.replacen("burst = 32", "burst = 32\nidle = \"interrupt\"", 1);
        assert_eq!(
            err(&bad_idle),
            "espd.toml: dataplane.idle: \"interrupt\" is neither \"poll\" nor \"adaptive\""
        );
        let bad_backend = GOOD.replacen("burst = 32", "burst = 32\nbackend = \"openssl\"", 1);
        assert_eq!(
            err(&bad_backend),
            "espd.toml: dataplane.backend: \"openssl\" is neither \"ipsec-mb\" nor \"rust\""
        );
    }

    #[test]
    fn host_side_keys_default_and_each_error_names_the_key() {
        let c = Config::parse(GOOD, Path::new("espd.toml")).unwrap();
        let x = c.exception.as_ref().unwrap();
        assert!(x.setup, "espd sets up the TAP unless told not to");
        assert_eq!(x.addresses, None);
        assert_eq!(c.ports[0].mac, None);
        let from_port: Vec<(String, String)> = c
            .exception_addresses()
            .iter()
            .map(|a| (format!("{}/{}", a.prefix.addr, a.prefix.len), a.key.clone()))
            .collect();
        assert_eq!(
            from_port,
            [
                ("198.18.0.1/24".to_string(), "ports[0].addresses[0]".to_string()),
                ("2001:db8::1/64".to_string(), "ports[0].addresses[1]".to_string())
            ]
        );
        let own = GOOD.replacen(
            "port = \"outside\"\n[[routes]]",
            "port = \"outside\"\naddresses = [\"198.18.2.1/24\"]\n[[routes]]",
            1,
        );
        let c = Config::parse(&own, Path::new("espd.toml")).unwrap();
        let a = c.exception_addresses();
        assert_eq!((a.len(), a[0].key.as_str()), (1, "exception.addresses[0]"));
        let mac = GOOD.replacen("role = \"inside\"", "role = \"inside\"\nmac = \"02:00:00:00:01:02\"", 1);
        assert_eq!(
            Config::parse(&mac, Path::new("espd.toml")).unwrap().ports[1].mac.as_deref(),
            Some("02:00:00:00:01:02")
        );
        let off = GOOD.replacen(
            "port = \"outside\"\n[[routes]]",
            "port = \"outside\"\nsetup = false\n[[routes]]",
            1,
        );
        assert!(!Config::parse(&off, Path::new("espd.toml")).unwrap().exception.unwrap().setup);

        let cases: &[(&str, &str, &str)] = &[
            (
                "port = \"outside\"\n[[routes]]",
                "port = \"outside\"\naddresses = [\"198.18.2.1\"]\n[[routes]]",
                "espd.toml: exception.addresses[0]: \"198.18.2.1\" is not ADDRESS/LENGTH",
            ),
            (
                "port = \"outside\"\n[[routes]]",
                "port = \"outside\"\naddresses = [\"198.18.2.1/24\", \"2001:db8::1/129\"]\n[[routes]]",
                "espd.toml: exception.addresses[1]: prefix length \"129\" is not 0..=128",
            ),
            (
                "port = \"outside\"\n[[routes]]",
                "port = \"outside\"\nsetup = false\naddresses = [\"198.18.2.1/24\"]\n[[routes]]",
                "espd.toml: exception.addresses: only used with setup = true",
            ),
            (
                "port = \"outside\"\n[[routes]]",
                "port = \"outside\"\nsetup = \"yes\"\n[[routes]]",
                "espd.toml: exception.setup: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "role = \"inside\"",
                "role = \"inside\"\nmac = \"02:00:00:00:01\"",
                "espd.toml: ports[1].mac: \"02:00:00:00:01\" is not a MAC address",
            ),
            (
                "role = \"inside\"",
                "role = \"inside\"\nmac = \"02:00:00:00:01:zz\"",
                "espd.toml: ports[1].mac: \"02:00:00:00:01:zz\" is not a MAC address",
            ),
            (
                "role = \"inside\"",
                "role = \"inside\"\nmac = \"01:00:5e:00:00:01\"",
                "espd.toml: ports[1].mac: \"01:00:5e:00:00:01\" is a multicast address",
            ),
            (
                "role = \"inside\"",
                "role = \"inside\"\nmac = \"00:00:00:00:00:00\"",
                "espd.toml: ports[1].mac: \"00:00:00:00:00:00\" is all zeros",
            ),
        ];
        each_refused(cases);
    }
}
