//! IKE identities as swanctl.conf writes them (strongSwan's
//! `identification_create_from_string`): an IP address, `@fqdn`,
//! `user@fqdn`, `@#hex` (KEY_ID), a distinguished name written as
//! strongSwan writes it (`C=CH, O=strongSwan, CN=gw`, most significant part
//! first), a bare host name (FQDN), `%any`.

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
    /// ID_DER_ASN1_DN: the text as written and its DER encoding (compared
    /// with a certificate's subject as names, not bytes).
    Dn {
        /// As configured.
        text: String,
        /// The DER `Name`.
        der: Vec<u8>,
    },
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
            Self::Dn { der, .. } => Identity::DistinguishedName(der.clone()),
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
            Self::Dn { text, .. } => f.write_str(text),
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

/// A distinguished name as strongSwan writes it: `C=CH, O=strongSwan,
/// CN=gw`, relative names separated by `,` (or `/`, with a leading `/`), most
/// significant first, `+` joining the parts of a multi-valued one, `\,` a
/// comma in a value. Attribute names are those of RFC 4519 (`C`, `ST`, `L`,
/// `O`, `OU`, `CN`, `serialNumber`, ...) or a dotted OID; `E` and `email`
/// stand for `emailAddress`. Values are encoded as UTF8String (matching is by
/// name, see `ike::pki::dn_matches`).
fn parse_dn(t: &str) -> Result<Vec<u8>, String> {
    use der::Encode;
    use std::str::FromStr;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let bad = |why: &str| format!("identity `{t}`: {why}");
    let (body, sep) = match t.strip_prefix('/') {
        Some(rest) => (rest, '/'),
        None => (t, ','),
    };
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c == sep => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let mut rdns = Vec::new();
    for part in parts.iter().map(|p| p.trim()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(bad(&format!("`{part}` is not of the form TYPE=value")));
        };
        let name = match name.trim() {
            "E" | "email" | "Email" => "emailAddress",
            "SN" => "serialNumber",
            n => n,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(bad(&format!("`{part}` has an empty value")));
        }
        let rdn = RelativeDistinguishedName::from_str(&format!("{name}={value}")).map_err(|_| {
            bad(&format!("unknown attribute type `{name}` (use C, ST, L, O, OU, CN, E, ... or an OID)"))
        })?;
        rdns.push(rdn);
    }
    RdnSequence(rdns).to_der().map_err(|e| bad(&format!("cannot encode: {e}")))
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
        return parse_dn(t).map(|der| ConfigId::Dn { text: t.to_owned(), der });
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
        let dn = parse_identity("C=CH, O=strongSwan, CN=gw");
        assert!(
            matches!(&dn, Ok(ConfigId::Dn { text, .. }) if text == "C=CH, O=strongSwan, CN=gw"),
            "{dn:?}"
        );
        assert_eq!(
            parse_identity("C=CH, X=y").err().as_deref(),
            Some("identity `C=CH, X=y`: unknown attribute type `X` (use C, ST, L, O, OU, CN, E, ... or an OID)")
        );
        assert_eq!(
            parse_identity("C=CH, O").err().as_deref(),
            Some("identity `C=CH, O`: `O` is not of the form TYPE=value")
        );
        assert_eq!(parse_identity("@#0").err().as_deref(), Some("identity `@#0`: invalid hex after @#"));
        assert_eq!(parse_identity(" ").err().as_deref(), Some("empty identity"));
    }

    #[test]
    fn distinguished_names_are_in_order_and_compare_as_names() {
        use der::Decode;
        let Ok(ConfigId::Dn { der, .. }) = parse_identity("C=CH, O=strong\\,Swan, CN=gw-b") else {
            panic!("not a DN");
        };
        let name = x509_cert::name::Name::from_der(&der).unwrap_or_default();
        let parts: Vec<String> = name.0.iter().map(|r| r.to_string()).collect();
        assert_eq!(parts, ["C=CH", "O=strong\\,Swan", "CN=gw-b"]);
        let slash = parse_identity("/C=CH/O=strong,Swan/CN=GW-B");
        let Ok(ConfigId::Dn { der: other, .. }) = slash else { panic!("{slash:?}") };
        assert!(ike::pki::dn_matches(&der, &other), "case and separators do not matter");
        let Ok(ConfigId::Dn { der: third, .. }) = parse_identity("C=CH, O=strong\\,Swan, CN=gw-c") else {
            panic!("not a DN");
        };
        assert!(!ike::pki::dn_matches(&der, &third));
        for ok in [
            "C=CH, ST=Zurich, L=Zurich, O=strongSwan Project, OU=Test, CN=moon.strongswan.org",
            "cn=gw, o=example",
            "CN=gw, E=ops@example.org",
            "CN=gw, emailAddress=ops@example.org, serialNumber=42, SN=43",
            "CN=a+OU=b, O=c",
            "2.5.4.3=gw",
        ] {
            assert!(matches!(parse_identity(ok), Ok(ConfigId::Dn { .. })), "{ok}: {:?}", parse_identity(ok));
        }
        let Ok(ConfigId::Dn { der: e1, .. }) = parse_identity("CN=gw, E=ops@example.org") else {
            panic!("E")
        };
        let Ok(ConfigId::Dn { der: e2, .. }) = parse_identity("CN=gw, emailAddress=ops@example.org") else {
            panic!("emailAddress")
        };
        assert_eq!(e1, e2, "E is emailAddress");
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
