//! The host side of the exception TAP: what the kernel needs so that its stack answers for
//! the port the TAP stands in for (iked's IKE, ping). DPDK's `net_tap` creates the interface;
//! espd then, once the TAP port is started:
//!
//! 1. enables IPv6 on it (`net.ipv6.conf.IFACE.disable_ipv6 = 0`, written to `/proc/sys`:
//!    the kernel takes IPv6 device settings only there, netlink's `RTM_SETLINK` carries
//!    none but the address generation mode and token),
//! 2. turns its TX checksum offloads off (every `tx-checksum-*` feature asked for or in
//!    effect, as `ethtool -K IFACE tx off`): espd reads the frames the host sends and needs their
//!    checksums complete, not left for an offload engine that is not there,
//! 3. sets it up (`RTM_SETLINK`, `IFF_UP`),
//! 4. adds the addresses (`RTM_NEWADDR`, replacing an equal one), the IPv6 ones with
//!    `IFA_F_NODAD` so that iked can bind them at once.
//!
//! Every step that fails stops espd with the configuration key and the kernel's reason.

pub mod ethtool;
pub mod netlink;

use std::io;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::config::Prefix;

/// An address to put on the TAP and the configuration key it comes from.
#[derive(Debug, Clone)]
pub struct HostAddress {
    /// The address and prefix length.
    pub prefix: Prefix,
    /// `exception.addresses[0]`, `ports[0].addresses[1]`.
    pub key: String,
}

/// Why the host side could not be set up: the step and the kernel's reason.
#[derive(Debug)]
pub struct HostError {
    /// What espd was doing.
    pub step: String,
    /// The configuration key behind it.
    pub key: String,
    /// The reason.
    pub reason: String,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.key, self.step, self.reason)
    }
}

impl std::error::Error for HostError {}

fn fail(key: &str, step: impl Into<String>) -> impl FnOnce(io::Error) -> HostError + '_ {
    let step = step.into();
    move |e| HostError { step, key: key.into(), reason: e.to_string() }
}

/// The name of the interface with this index.
pub fn interface_name(ifindex: u32) -> io::Result<String> {
    let mut rt = netlink::Netlink::open(netlink_sys::protocols::NETLINK_ROUTE)?;
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let answers = rt.request(RouteNetlinkMessage::GetLink(msg), 0)?;
    answers
        .iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }),
            _ => None,
        })
        .ok_or_else(|| io::Error::other(format!("the kernel named no interface with index {ifindex}")))
}

/// Sets up the interface `ifindex` (named `name`) as the module says, calling `log` with one
/// line per thing done.
pub fn configure(
    ifindex: u32,
    name: &str,
    addresses: &[HostAddress],
    log: &mut dyn FnMut(String),
) -> Result<(), HostError> {
    const KEY: &str = "exception.setup";
    let has_v6 = addresses.iter().any(|a| a.prefix.addr.is_ipv6());
    let sysctl = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&sysctl, "0") {
        Ok(()) => log(format!("{name}: IPv6 enabled")),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !has_v6 => {
            log(format!("{name}: the kernel has no IPv6; left without it"))
        }
        Err(e) => return Err(fail(KEY, format!("cannot enable IPv6 on {name} ({sysctl})"))(e)),
    }

    let step = format!("cannot turn TX checksum offload off on {name} (ethtool netlink)");
    let mut et = ethtool::Ethtool::open().map_err(fail(KEY, step.clone()))?;
    // Both the features in effect and those asked for (which the kernel would turn on again
    // when the device allows, e.g. once the TAP's checksum offload is enabled), as
    // `ethtool -K tx off` clears both.
    let tx_csum =
        |f: &[String]| f.iter().filter(|n| n.starts_with("tx-checksum-")).cloned().collect::<Vec<_>>();
    let before = et.features(ifindex).map_err(fail(KEY, step.clone()))?;
    let mut off = tx_csum(&before.wanted);
    off.extend(tx_csum(&before.active).into_iter().filter(|n| !before.wanted.contains(n)));
    if !off.is_empty() {
        et.turn_off(ifindex, &off).map_err(fail(KEY, step.clone()))?;
    }
    let after = et.features(ifindex).map_err(fail(KEY, step.clone()))?;
    let still = tx_csum(&after.active);
    if !still.is_empty() {
        return Err(HostError {
            step,
            key: KEY.into(),
            reason: format!("{} stays on: the device does not let it change", still.join(", ")),
        });
    }
    log(if off.is_empty() {
        format!("{name}: TX checksum offload already off")
    } else {
        format!("{name}: TX checksum offload off ({})", off.join(", "))
    });

    let mut rt = netlink::Netlink::open(netlink_sys::protocols::NETLINK_ROUTE)
        .map_err(fail(KEY, "cannot open a netlink socket"))?;
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    rt.request(RouteNetlinkMessage::SetLink(link), 0).map_err(fail(KEY, format!("cannot set {name} up")))?;
    log(format!("{name}: link up"));

    for a in addresses {
        let Prefix { addr, len } = a.prefix;
        let mut msg = AddressMessage::default();
        msg.header.index = ifindex;
        msg.header.prefix_len = len;
        msg.header.family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        if addr.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
        }
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        rt.request(RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_REPLACE).map_err(|e| {
            HostError {
                step: format!("cannot add {addr}/{len} to {name}"),
                key: a.key.clone(),
                reason: e.to_string(),
            }
        })?;
        log(format!(
            "{name}: address {addr}/{len}{} ({})",
            if addr.is_ipv6() { " nodad" } else { "" },
            a.key
        ));
    }
    Ok(())
}
