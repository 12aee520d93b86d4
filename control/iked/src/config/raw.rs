//! The file as serde reads it: every table refuses unknown keys, values are
//! still strings where swanctl has a syntax of its own (proposals, selectors,
//! identities), parsed and checked in `validate.rs` with their key paths.

use super::value::{CountValue, ListValue, TimeValue, YesNo};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub daemon: Option<RawDaemon>,
    #[serde(default)]
    pub connections: BTreeMap<String, RawConnection>,
    #[serde(default)]
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub sadb: Option<String>,
    pub control_socket: Option<String>,
    pub ctl_group: Option<String>,
    pub listen: Option<ListValue>,
    pub port: Option<u16>,
    pub port_nat_t: Option<u16>,
    pub keylog: Option<String>,
    pub delete_sas_on_exit: Option<bool>,
    pub init_limit_half_open: Option<u64>,
    pub block_threshold: Option<u64>,
    pub half_open_reserved: Option<u64>,
    pub metrics: Option<String>,
    pub metrics_per_sa: Option<bool>,
    pub log: Option<BTreeMap<String, toml::Value>>,
    pub swanctl_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    pub version: Option<i64>,
    pub local_addrs: Option<ListValue>,
    pub remote_addrs: Option<ListValue>,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    pub proposals: Option<ListValue>,
    pub aggressive: Option<bool>,
    pub encap: Option<bool>,
    pub prefer_configured_proposals: Option<YesNo>,
    pub dpd_delay: Option<TimeValue>,
    pub dpd_timeout: Option<TimeValue>,
    pub rekey_time: Option<TimeValue>,
    pub reauth_time: Option<TimeValue>,
    pub over_time: Option<TimeValue>,
    pub rand_time: Option<TimeValue>,
    pub keyingtries: Option<u32>,
    pub send_cert: Option<String>,
    pub send_certreq: Option<bool>,
    pub local: Option<RawEnd>,
    pub remote: Option<RawEnd>,
    #[serde(default)]
    pub children: BTreeMap<String, RawChild>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnd {
    pub auth: Option<String>,
    pub id: Option<String>,
    pub certs: Option<ListValue>,
    pub cacerts: Option<ListValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChild {
    pub local_ts: Option<ListValue>,
    pub remote_ts: Option<ListValue>,
    pub esp_proposals: Option<ListValue>,
    pub mode: Option<String>,
    pub start_action: Option<String>,
    pub dpd_action: Option<String>,
    pub close_action: Option<String>,
    pub rekey_time: Option<TimeValue>,
    pub life_time: Option<TimeValue>,
    pub rand_time: Option<TimeValue>,
    pub rekey_bytes: Option<CountValue>,
    pub life_bytes: Option<CountValue>,
    pub rand_bytes: Option<CountValue>,
    pub rekey_packets: Option<CountValue>,
    pub life_packets: Option<CountValue>,
    pub rand_packets: Option<CountValue>,
    pub replay_window: Option<u32>,
}
