//! espd's per-lcore counters are declared in the SA database crate (`sadb::counters`: one
//! declaration per group gives the enum the code counts by, the names and the help texts),
//! part of the contract with the control side; this module re-exports them.

pub use sadb::counters::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(1), "drop-replay");
        assert_eq!(name(gw_drop(GwDrop::PolicyDiscard)), "drop-policy-discard");
        assert_eq!(name(gw_drop(GwDrop::NoException)), "drop-no-exception-path");
        assert_eq!(name(traffic(Traffic::TxPackets)), "tx-packets");
        assert_eq!(name(traffic(Traffic::NeighUnsolicited)), "neigh-unsolicited");
        assert_eq!(name(traffic(Traffic::NeighEvicted)), "neigh-evicted");
        assert_eq!(name(60), "counter-60");
        assert_eq!(drop_name(2), "auth");
        assert_eq!(Traffic::HandedOff.name(), "handed-off");
        assert!(Traffic::ArpReplies.help().starts_with("ARP requests"));
        // The groups do not overlap and fit the reader slot's counters.
        assert!(GW_DROP_BASE >= DROP_NAMES.len() && TRAFFIC_BASE >= GW_DROP_BASE + GW_DROP_NAMES.len());
        assert!(TRAFFIC_BASE + TRAFFIC_NAMES.len() <= sadb::READER_COUNTERS);
        // Every counter has its own name and a help text.
        let all: Vec<String> =
            (0..sadb::READER_COUNTERS).map(name).filter(|n| !n.starts_with("counter-")).collect();
        let unique: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "{all:?}");
        assert_eq!(all.len(), DROP_NAMES.len() + GW_DROP_NAMES.len() + TRAFFIC_NAMES.len());
        assert!(GW_DROP_HELP.iter().chain(TRAFFIC_HELP.iter()).all(|h| h.ends_with('.') && h.len() > 10));
        // The engine's reasons: the same count and order as esp::DropReason.
        assert_eq!(DROP_NAMES.len(), esp::DropReason::COUNT);
        assert_eq!(DROP_NAMES[esp::DropReason::Auth as usize], "auth");
        assert_eq!(DROP_NAMES[esp::DropReason::NatKeepalive as usize], "nat-keepalive");
    }
}
