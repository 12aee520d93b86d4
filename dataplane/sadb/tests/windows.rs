//! Anti-replay windows up to the ESP engine's largest (2^20 packets): a region sized for
//! them takes SAs with such windows and refuses larger ones, naming the capacity.

mod common;

use common::*;
use sadb::*;

#[test]
fn windows_up_to_two_to_the_twentieth() {
    let dir = tempfile::tempdir().unwrap();
    let caps = Capacities { sas: 8, max_replay_window: MAX_REPLAY_WINDOW, ..small_caps() };
    let r = std::sync::Arc::new(Region::create(dir.path().join("sadb"), &caps).unwrap());
    assert_eq!(r.capacities().max_replay_window, 1 << 20);
    let mut c = gcm_sa(0x2020, Direction::In, 1);
    c.replay_window = 1 << 20;
    let slot = r.writer().unwrap().add_sa(&c).unwrap();
    let reader = r.register_reader(1).unwrap();
    // The slot's bitmap covers the window and its spare block, a power of two of words.
    assert_eq!(reader.replay_bitmap(slot).len(), 32_768);
    let (back, _) = reader.read_sa(slot).unwrap();
    assert_eq!(back.replay_window, 1 << 20);
    // Beyond the region's windows: refused.
    let mut c = gcm_sa(0x2021, Direction::In, 1);
    c.replay_window = (1 << 20) + 64;
    assert!(r.writer().unwrap().add_sa(&c).is_err());
    // And no region is sized beyond the engine's largest window.
    let too_big = Capacities { max_replay_window: MAX_REPLAY_WINDOW + 64, ..caps };
    let e = Region::create(dir.path().join("big"), &too_big).unwrap_err().to_string();
    assert!(e.contains("max_replay_window") && e.contains("1048576"), "{e}");
}
