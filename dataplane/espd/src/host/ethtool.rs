//! The ethtool netlink family (generic netlink, Linux 5.6+): read an interface's active
//! features and turn some off, as `ethtool -k` and `ethtool -K DEV tx off` do.
//!
//! The `ethtool` crate of the same project as `netlink-packet-route` reads features but cannot
//! change them (its encoder for feature bitsets is a `todo!()`), so the two messages used here
//! are built by hand: a `FEATURES_GET` with the interface's index, and a `FEATURES_SET` whose
//! `WANTED` bitset lists, by name and without a value flag, the features to turn off.
//! Attribute numbers are the kernel's `include/uapi/linux/ethtool_netlink.h`.

use std::io;

use netlink_packet_core::{DecodeError, Emitable, ParseableParametrized, NLA_F_NESTED};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use super::netlink::{attrs, put_attr, Netlink};

const MSG_FEATURES_GET: u8 = 11;
const MSG_FEATURES_SET: u8 = 12;
const A_HEADER_DEV_INDEX: u16 = 1;
const A_FEATURES_HEADER: u16 = 1;
const A_FEATURES_WANTED: u16 = 3;
const A_FEATURES_ACTIVE: u16 = 4;
const A_BITSET_NOMASK: u16 = 1;
const A_BITSET_BITS: u16 = 3;
const A_BITSETS_BIT: u16 = 1;
const A_BITSET_BIT_NAME: u16 = 2;
const A_BITSET_BIT_VALUE: u16 = 3;

/// One ethtool message: its command and its attributes, encoded.
#[derive(Debug, Clone)]
struct EthtoolMsg {
    cmd: u8,
    attrs: Vec<u8>,
}

impl GenlFamily for EthtoolMsg {
    fn family_name() -> &'static str {
        "ethtool"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for EthtoolMsg {
    fn buffer_len(&self) -> usize {
        self.attrs.len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        if let Some(b) = buffer.get_mut(..self.attrs.len()) {
            b.copy_from_slice(&self.attrs);
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for EthtoolMsg {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(EthtoolMsg { cmd: header.cmd, attrs: buf.to_vec() })
    }
}

/// An interface's features that are on, by name (`tx-checksum-ip-generic`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Asked for: what the kernel turns on when the device allows.
    pub wanted: Vec<String>,
    /// In effect.
    pub active: Vec<String>,
}

/// A generic netlink socket with the ethtool family's id resolved.
#[derive(Debug)]
pub struct Ethtool {
    nl: Netlink,
    family: u16,
}

impl Ethtool {
    /// Opens the socket and asks the kernel for the family's id.
    pub fn open() -> io::Result<Ethtool> {
        let mut nl = Netlink::open(netlink_sys::protocols::NETLINK_GENERIC)?;
        let ask = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(EthtoolMsg::family_name().into())],
        };
        let answers = nl.request(GenlMessage::from_payload(ask), 0)?;
        let family = answers
            .iter()
            .flat_map(|m| m.payload.nlas.iter())
            .find_map(|a| if let GenlCtrlAttrs::FamilyId(id) = a { Some(*id) } else { None })
            .ok_or_else(|| io::Error::other("the kernel has no ethtool netlink family (Linux 5.6+)"))?;
        Ok(Ethtool { nl, family })
    }

    fn request(&mut self, cmd: u8, attrs: Vec<u8>) -> io::Result<Vec<EthtoolMsg>> {
        let mut msg = GenlMessage::from_payload(EthtoolMsg { cmd, attrs });
        msg.set_resolved_family_id(self.family);
        Ok(self.nl.request(msg, 0)?.into_iter().map(|m| m.payload).collect())
    }

    /// The names of the interface's features that are on: those asked for (`wanted`) and
    /// those in effect (`active`).
    pub fn features(&mut self, ifindex: u32) -> io::Result<Features> {
        let answers = self.request(MSG_FEATURES_GET, header(ifindex))?;
        let mut f = Features::default();
        for m in &answers {
            for (kind, value) in attrs(&m.attrs) {
                match kind {
                    A_FEATURES_WANTED => f.wanted.extend(bitset_on(value)),
                    A_FEATURES_ACTIVE => f.active.extend(bitset_on(value)),
                    _ => {}
                }
            }
        }
        Ok(f)
    }

    /// Turns the named features off (features the device cannot change stay as they are:
    /// read them back to know).
    pub fn turn_off(&mut self, ifindex: u32, names: &[String]) -> io::Result<()> {
        let mut bits = Vec::new();
        for name in names {
            let mut bit = Vec::new();
            let mut cname = name.as_bytes().to_vec();
            cname.push(0);
            put_attr(&mut bit, A_BITSET_BIT_NAME, &cname);
            put_attr(&mut bits, A_BITSETS_BIT | NLA_F_NESTED, &bit);
        }
        let mut wanted = Vec::new();
        put_attr(&mut wanted, A_BITSET_BITS | NLA_F_NESTED, &bits);
        let mut msg = header(ifindex);
        put_attr(&mut msg, A_FEATURES_WANTED | NLA_F_NESTED, &wanted);
        self.request(MSG_FEATURES_SET, msg).map(drop)
    }
}

/// The request header attribute naming the interface by index.
fn header(ifindex: u32) -> Vec<u8> {
    let mut inner = Vec::new();
    put_attr(&mut inner, A_HEADER_DEV_INDEX, &ifindex.to_ne_bytes());
    let mut out = Vec::new();
    put_attr(&mut out, A_FEATURES_HEADER | NLA_F_NESTED, &inner);
    out
}

/// The names of the bits that are on in a verbose bitset: without a mask (`NOMASK`) every
/// listed bit is on; with one, those that carry the `VALUE` flag.
fn bitset_on(bitset: &[u8]) -> Vec<String> {
    let top = attrs(bitset);
    let nomask = top.iter().any(|(k, _)| *k == A_BITSET_NOMASK);
    let mut on = Vec::new();
    for (_, bits) in top.iter().filter(|(k, _)| *k == A_BITSET_BITS) {
        for (_, bit) in attrs(bits).into_iter().filter(|(k, _)| *k == A_BITSETS_BIT) {
            let fields = attrs(bit);
            let value = nomask || fields.iter().any(|(k, _)| *k == A_BITSET_BIT_VALUE);
            let name = fields.iter().find(|(k, _)| *k == A_BITSET_BIT_NAME).map(|(_, v)| {
                String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
            });
            if let (true, Some(name)) = (value, name) {
                on.push(name);
            }
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bit(name: &str, value: bool) -> Vec<u8> {
        let mut b = Vec::new();
        put_attr(&mut b, 1, &7u32.to_ne_bytes());
        put_attr(&mut b, A_BITSET_BIT_NAME, format!("{name}\0").as_bytes());
        if value {
            put_attr(&mut b, A_BITSET_BIT_VALUE, &[]);
        }
        let mut out = Vec::new();
        put_attr(&mut out, A_BITSETS_BIT | NLA_F_NESTED, &b);
        out
    }

    #[test]
    fn verbose_bitsets_with_and_without_mask() {
        let mut bits = bit("tx-checksum-ip-generic", false);
        bits.extend(bit("rx-checksum", true));
        let mut masked = Vec::new();
        put_attr(&mut masked, A_BITSET_BITS | NLA_F_NESTED, &bits);
        assert_eq!(bitset_on(&masked), ["rx-checksum"]);
        let mut nomask = Vec::new();
        put_attr(&mut nomask, A_BITSET_NOMASK, &[]);
        put_attr(&mut nomask, A_BITSET_BITS | NLA_F_NESTED, &bits);
        assert_eq!(bitset_on(&nomask), ["tx-checksum-ip-generic", "rx-checksum"]);
        for cut in 0..nomask.len() {
            let _ = bitset_on(&nomask[..cut]);
        }
    }
}
