//! The names of espd's per-lcore counters live in the SA database crate (`sadb::counters`),
//! part of the contract with the control side; this module re-exports them.

pub use sadb::counters::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(1), "drop-replay");
        assert_eq!(name(GW_DROP_BASE), "drop-policy-discard");
        assert_eq!(name(TRAFFIC_BASE + 2), "tx-packets");
        assert_eq!(name(TRAFFIC_BASE + 14), "neigh-unsolicited");
        assert_eq!(name(TRAFFIC_BASE + 16), "neigh-evicted");
        assert_eq!(name(60), "counter-60");
        assert_eq!(drop_name(2), "auth");
        assert!(GW_DROP_BASE >= DROP_NAMES.len() && TRAFFIC_BASE >= GW_DROP_BASE + GW_DROP_NAMES.len());
        assert!(TRAFFIC_BASE + TRAFFIC_NAMES.len() <= sadb::READER_COUNTERS);
        // One name per gateway drop reason, in order.
        assert_eq!(GW_DROP_NAMES.len(), crate::gw::worker::GwDrop::TooBig as usize + 1);
        assert_eq!(
            name(GW_DROP_BASE + crate::gw::worker::GwDrop::NoException as usize),
            "drop-no-exception-path"
        );
        // The engine's reasons: the same count and order as esp::DropReason.
        assert_eq!(DROP_NAMES.len(), esp::DropReason::COUNT);
        assert_eq!(DROP_NAMES[esp::DropReason::Auth as usize], "auth");
        assert_eq!(DROP_NAMES[esp::DropReason::NatKeepalive as usize], "nat-keepalive");
    }
}
