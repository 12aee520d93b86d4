//! IKE identities as swanctl.conf writes them (strongSwan's
//! `identification_create_from_string`): an IP address, `@fqdn`,
//! `user@fqdn`, `@#hex` (KEY_ID), a bare host name (FQDN), `%any`.

use ike::engine::Identity;
use std::fmt;
use std::net::IpAddr;

/// A configured identity; [`ConfigId::Any`] matches every peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigId {
    /// `%any` (or unset): for `local.id` our IKE address, for `remote.id`
    /// whatever the peer presents.
    Any,
    /// ID_IPV4_ADDR / ID_IPV6_ADDR.
    Address(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_USER_FQDN.
    UserFqdn(String),
    /// ID_KEY_ID.
    KeyId(Vec<u8>),
}

impl ConfigId {
    /// The engine's identity; `None` for `%any`.
    pub fn to_engine(&self) -> Option<Identity> {
        Some(match self {
            Self::Any => return None,
            Self::Address(a) => Identity::Address(*a),
            Self::Fqdn(s) => Identity::Fqdn(s.clone()),
            Self::UserFqdn(s) => Identity::UserFqdn(s.clone()),
            Self::KeyId(k) => Identity::KeyId(k.clone()),
        })
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("%any"),
            Self::Address(a) => write!(f, "{a}"),
            Self::Fqdn(s) => write!(f, "@{s}"),
            Self::UserFqdn(s) => f.write_str(s),
            Self::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let t = text.strip_prefix("0x").unwrap_or(text);
    if t.is_empty() || !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len()).step_by(2).map(|i| t.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// Parses one identity string.
pub fn parse_identity(text: &str) -> Result<ConfigId, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty identity".to_owned());
    }
    if t == "%any" || t == "%any4" || t == "%any6" {
        return Ok(ConfigId::Any);
    }
    if t.contains('=') {
        return Err(format!(
            "identity `{t}`: distinguished names need certificates, which are not supported yet"
        ));
    }
    if t.contains('*') {
        return Err(format!("identity `{t}`: wildcards are not supported"));
    }
    if let Some(k) = t.strip_prefix("@#") {
        return hex(k).map(ConfigId::KeyId).ok_or_else(|| format!("identity `{t}`: invalid hex after @#"));
    }
    if let Some(f) = t.strip_prefix('@') {
        if f.is_empty() {
            return Err(format!("identity `{t}`: empty FQDN"));
        }
        return Ok(ConfigId::Fqdn(f.to_owned()));
    }
    if t.contains('@') {
        return Ok(ConfigId::UserFqdn(t.to_owned()));
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(ConfigId::Address(a));
    }
    Ok(ConfigId::Fqdn(t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_forms() {
        assert_eq!(parse_identity("%any"), Ok(ConfigId::Any));
        assert_eq!(
            parse_identity("192.0.2.1"),
            Ok(ConfigId::Address("192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]))))
        );
        assert_eq!(parse_identity("@gw.example.org"), Ok(ConfigId::Fqdn("gw.example.org".into())));
        assert_eq!(parse_identity("gw.example.org"), Ok(ConfigId::Fqdn("gw.example.org".into())));
        assert_eq!(parse_identity("ops@example.org"), Ok(ConfigId::UserFqdn("ops@example.org".into())));
        assert_eq!(parse_identity("@#01ff"), Ok(ConfigId::KeyId(vec![1, 0xff])));
        assert_eq!(
            parse_identity("C=CH, O=strongSwan, CN=gw").err().as_deref(),
            Some("identity `C=CH, O=strongSwan, CN=gw`: distinguished names need certificates, which are not supported yet")
        );
        assert_eq!(parse_identity("@#0").err().as_deref(), Some("identity `@#0`: invalid hex after @#"));
        assert_eq!(parse_identity(" ").err().as_deref(), Some("empty identity"));
    }

    #[test]
    fn identities_display_back_and_map_to_the_engine() {
        for t in ["%any", "192.0.2.1", "@gw.example.org", "ops@example.org", "@#01ff"] {
            assert_eq!(parse_identity(t).map(|i| i.to_string()).as_deref(), Ok(t));
        }
        assert_eq!(
            parse_identity("@a.b").ok().and_then(|i| i.to_engine()),
            Some(Identity::Fqdn("a.b".into()))
        );
        assert_eq!(ConfigId::Any.to_engine(), None);
    }
}
