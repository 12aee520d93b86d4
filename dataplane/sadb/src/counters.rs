//! The meaning of each per-reader counter the dataplane keeps in its reader slot, so that
//! the control side (`espctl stats`, `ikectl stats`: other processes) can name them. Part
//! of the region's contract: changing an index means bumping [`crate::ABI_VERSION`].
//! Indexes below `TRAFFIC_BASE` are drop reasons: the ESP engine's, in the order of its
//! `DropReason` (a crate this one does not depend on, so their names are listed here and a
//! test of espd checks the order), then the gateway's own ([`GwDrop`]). The gateway's groups
//! are each declared once by `counter_group!`.

/// First drop-reason counter; reason `r` counts at `DROP_BASE + r`.
pub const DROP_BASE: usize = 0;

/// Names of the ESP engine's drop reasons, by code (the order of `esp::DropReason`).
pub const DROP_NAMES: [&str; 17] = [
    "no-sa",
    "replay",
    "auth",
    "bad-pad",
    "bad-length",
    "selector-mismatch",
    "seq-overflow",
    "bad-outer-header",
    "not-esp",
    "spi-mismatch",
    "bad-next-header",
    "bad-inner-header",
    "no-room",
    "ecn-drop",
    "unsupported",
    "crypto-error",
    "nat-keepalive",
];

/// Declares a group of per-lcore counters once (as VPP's `foreach_esp_decrypt_error`): an
/// enum whose discriminant is the counter's index in its group, and, in the same order, the
/// names the control side prints and the help text metrics carry, which also documents the
/// variant. Code counts by variant; nothing else spells an index.
macro_rules! counter_group {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident, names $NAMES:ident, help $HELP:ident {
            $($Variant:ident = $name:literal: $help:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum $Enum {
            $(#[doc = $help] $Variant,)*
        }

        impl $Enum {
            /// Every counter of the group, in index order.
            pub const ALL: &'static [$Enum] = &[$($Enum::$Variant),*];
            /// Its name, as `espctl stats` prints it.
            pub fn name(self) -> &'static str {
                $NAMES[self as usize]
            }
            /// What it counts, one sentence.
            pub fn help(self) -> &'static str {
                $HELP[self as usize]
            }
        }

        /// Names, by index in the group.
        pub const $NAMES: [&str; $Enum::ALL.len()] = [$($name),*];
        /// Help texts, by index in the group.
        pub const $HELP: [&str; $Enum::ALL.len()] = [$($help),*];
    };
}

/// The gateway's own drop reasons, counted after the engine's.
pub const GW_DROP_BASE: usize = 24;

counter_group! {
    /// The gateway's own drop reasons (counted after the engine's, from [`GW_DROP_BASE`]).
    pub enum GwDrop, names GW_DROP_NAMES, help GW_DROP_HELP {
        PolicyDiscard = "policy-discard": "An outbound policy said discard.",
        NoSaAcquire = "no-sa-acquire": "A protect policy has no SA yet (an acquire was sent).",
        SaExpired = "sa-expired": "The SA's hard lifetime was reached.",
        NoRoute = "no-route": "No route, or the next hop's MAC is unknown (a resolution request was sent).",
        TxFull = "tx-full": "The TX queue was full.",
        ChainedMbuf = "chained-mbuf": "A multi-segment mbuf, or one whose buffer another mbuf shares (not writable in place).",
        Malformed = "malformed": "A frame whose headers are wrong (truncated, bad IPv4 checksum or length, martian address, bad extension headers, runt ESP, SPI 0...).",
        NoException = "no-exception-path": "Addressed to the gateway with no exception path to deliver it to.",
        TooBig = "too-big": "Too big for the outside link once encapsulated (an ICMP error went back when DF was set or the packet was IPv6).",
        UnknownPort = "unknown-port": "A frame from a port this worker does not serve.",
    }
}

/// Traffic counters, from `TRAFFIC_BASE`.
pub const TRAFFIC_BASE: usize = 64;

counter_group! {
    /// What the gateway forwarded, answered and handed over (from [`TRAFFIC_BASE`]).
    pub enum Traffic, names TRAFFIC_NAMES, help TRAFFIC_HELP {
        RxPackets = "rx-packets": "Frames received on the ports.",
        RxBytes = "rx-bytes": "Bytes received on the ports.",
        TxPackets = "tx-packets": "Frames sent on the ports.",
        TxBytes = "tx-bytes": "Bytes sent on the ports.",
        EncapPackets = "encap-packets": "Packets encapsulated in ESP.",
        DecapPackets = "decap-packets": "ESP packets decapsulated.",
        BypassPackets = "bypass-packets": "Plaintext forwarded with no policy or a bypass policy.",
        ToHost = "exception-to-host": "Frames for the gateway itself handed to the host stack.",
        FromHost = "exception-from-host": "Frames the host stack sent through the gateway.",
        ArpReplies = "arp-replies": "ARP requests for our addresses answered.",
        NdReplies = "nd-replies": "Neighbour solicitations for our addresses answered.",
        Acquires = "acquires": "Acquire events sent for protect policies without an SA.",
        HandedOff = "handed-off": "Inbound frames handed to the worker that owns their SA.",
        Ignored = "ignored": "Frames not for us and not to forward (another host's unicast, VLAN-tagged, LLDP...).",
        NeighUnsolicited = "neigh-unsolicited": "Neighbour learning refused: a MAC for an address nobody asked for (ARP, NS or NA from a stranger).",
        NeighTableFull = "neigh-table-full": "Neighbour learning refused: the new address's bucket holds static entries only.",
        NeighEvicted = "neigh-evicted": "Neighbour entries pushed out of a full bucket by a new address.",
    }
}

/// The per-lcore counter index of a gateway drop reason.
pub const fn gw_drop(d: GwDrop) -> usize {
    GW_DROP_BASE + d as usize
}

/// The per-lcore counter index of a traffic counter.
pub const fn traffic(t: Traffic) -> usize {
    TRAFFIC_BASE + t as usize
}

/// The name of per-lcore counter `i`.
pub fn name(i: usize) -> String {
    let named = if i >= TRAFFIC_BASE {
        TRAFFIC_NAMES.get(i - TRAFFIC_BASE)
    } else if i >= GW_DROP_BASE {
        GW_DROP_NAMES.get(i - GW_DROP_BASE)
    } else {
        DROP_NAMES.get(i - DROP_BASE)
    };
    match named {
        Some(n) if i < TRAFFIC_BASE => format!("drop-{n}"),
        Some(n) => (*n).to_string(),
        None => format!("counter-{i}"),
    }
}

/// The name of a per-SA drop counter (the engine's reason codes).
pub fn drop_name(i: usize) -> &'static str {
    DROP_NAMES.get(i).copied().unwrap_or("other")
}
