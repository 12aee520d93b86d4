//! The meaning of each per-reader counter the dataplane keeps in its reader slot, so that
//! the control side (`espctl stats`, `ikectl stats`: other processes) can name them. Part
//! of the region's contract: changing an index means bumping [`crate::ABI_VERSION`]. Indexes below `DROP_BASE + 32` are drop
//! reasons, in the order of the ESP engine's `DropReason` followed by the gateway's own.

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

/// The gateway's own drop reasons, counted after the engine's.
pub const GW_DROP_BASE: usize = 24;
/// Gateway drop names, from `GW_DROP_BASE`.
pub const GW_DROP_NAMES: [&str; 9] = [
    "policy-discard",
    "no-sa-acquire",
    "sa-expired",
    "no-route",
    "tx-full",
    "chained-mbuf",
    "not-ip",
    "no-exception-path",
    "too-big",
];

/// Traffic counters, from `TRAFFIC_BASE`.
pub const TRAFFIC_BASE: usize = 64;
/// Traffic counter names.
pub const TRAFFIC_NAMES: [&str; 17] = [
    "rx-packets",
    "rx-bytes",
    "tx-packets",
    "tx-bytes",
    "encap-packets",
    "decap-packets",
    "bypass-packets",
    "exception-to-host",
    "exception-from-host",
    "arp-replies",
    "nd-replies",
    "acquires",
    "handed-off",
    "ignored",
    // The neighbour table (ARP/ND), published by the worker that ages it once a second:
    // learning refused because nobody asked for the address, or because its bucket holds
    // static entries only; entries pushed out of a full bucket by a new address.
    "neigh-unsolicited",
    "neigh-table-full",
    "neigh-evicted",
];

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
