//! Exercises the C shim and the safe layer in one process: the EAL can be initialised only
//! once per process, so this file holds a single test that walks through every part.

use dpdk::{lcore, Burst, Eal, Mempool, Port, PortConfig, Ring};

fn eal() -> Eal {
    Eal::init(
        "shim-test",
        &[
            "-l",
            "0,1",
            "--no-pci",
            "--no-huge",
            "-m",
            "256",
            "--no-shconf",
            "--no-telemetry",
            "--log-level",
            "error",
            "--vdev",
            "net_ring0",
        ],
    )
    .expect("EAL starts with --no-huge and a net_ring vdev")
}

#[test]
fn shim_and_safe_layer() {
    let _eal = eal();
    assert!(Eal::init("again", &["--no-pci"]).is_err(), "a second EAL init is refused");

    let pool = Mempool::new("shim_test_pool", 1023, 0, Mempool::DEFAULT_DATA_ROOM, None).unwrap();
    let full = pool.available();
    assert_eq!(full, 1023);

    mbuf_edits(&pool);
    assert_eq!(pool.available(), full, "every mbuf went back to the pool");

    burst_ops(&pool);
    assert_eq!(pool.available(), full, "bursts free what they hold");

    ring_handoff(&pool);
    assert_eq!(pool.available(), full);

    port_loopback(&pool);
    lcore_launch();
}

fn mbuf_edits(pool: &Mempool) {
    let mut m = pool.alloc().expect("pool has buffers");
    assert_eq!(pool.available(), 1022);
    assert_eq!(m.data_len(), 0);
    assert_eq!(m.headroom(), usize::from(dpdk::PKTMBUF_HEADROOM));
    assert_eq!(m.tailroom(), 2048);
    assert!(m.is_contiguous());

    m.append(100).unwrap().iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    assert_eq!(m.data_len(), 100);
    assert_eq!(m.pkt_len(), 100);
    assert_eq!(m.tailroom(), 1948);

    let hdr = m.prepend(14).unwrap();
    hdr.copy_from_slice(&[0xee; 14]);
    assert_eq!(m.data_len(), 114);
    assert_eq!(m.headroom(), 128 - 14);
    assert_eq!(
        &m.data()[..15],
        &[0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0]
    );
    assert_eq!(m.data()[113], 99);

    assert!(m.prepend(200).is_none(), "prepend past the headroom fails");
    assert!(m.append(4000).is_none(), "append past the tailroom fails");
    assert_eq!(m.data_len(), 114, "failed edits change nothing");

    assert!(m.adj(14));
    assert_eq!(m.data()[0], 0);
    assert!(m.trim(50));
    assert_eq!(m.data_len(), 50);
    assert_eq!(m.data()[49], 49);
    assert!(!m.trim(51), "trimming more than the data fails");
    assert!(!m.adj(51));

    // In-place view of the whole buffer, then a new extent.
    let (buf, off, len) = m.buffer_mut();
    assert_eq!((off, len), (128, 50));
    buf[off - 4..off].copy_from_slice(&[1, 2, 3, 4]);
    assert!(m.set_data(124, 54));
    assert_eq!(&m.data()[..5], &[1, 2, 3, 4, 0]);
    assert_eq!(m.pkt_len(), 54);
    assert!(!m.set_data(2100, 100), "extent past the buffer is refused");

    m.data_mut()[0] = 0xaa;
    assert_eq!(m.data()[0], 0xaa);
    m.reset();
    assert_eq!(m.data_len(), 0);
    drop(m);

    mbuf_edits_match_dpdk(pool);

    let raw = pool.alloc().unwrap().into_raw();
    assert_eq!(pool.available(), 1022, "into_raw does not free");
    // SAFETY: `raw` came from into_raw just above and is owned by nobody else.
    drop(unsafe { dpdk::Mbuf::from_raw(raw) });
}

/// The inline single-segment edits against DPDK's own functions (through the shim), op by
/// op, at and around every boundary: the same results, the same data offset and lengths.
fn mbuf_edits_match_dpdk(pool: &Mempool) {
    let mut ours = pool.alloc().unwrap();
    let theirs = pool.alloc().unwrap().into_raw();
    let state = |m: &dpdk::Mbuf| (m.headroom(), m.data_len(), m.pkt_len(), m.tailroom());
    // SAFETY: `theirs` is a valid mbuf owned by this function until it is freed below.
    let view = |raw: *mut dpdk_sys::rte_mbuf| unsafe { dpdk::Mbuf::from_raw(raw) };
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for step in 0..4000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (before, _, _, after) = state(&ours);
        let room = [before, after, ours.data_len()][(x % 3) as usize];
        // Exactly the room, one past it, zero, or anything up to 2100.
        let len = match (x >> 8) % 4 {
            0 => room,
            1 => room + 1,
            2 => 0,
            _ => ((x >> 16) % 2100) as usize,
        } as u16;
        let op = (x >> 40) % 4;
        let t = view(theirs);
        let a = match op {
            0 => ours.prepend(len).is_some(),
            1 => ours.append(len).is_some(),
            2 => ours.adj(len),
            _ => ours.trim(len),
        };
        // SAFETY: `theirs` is a valid single-segment mbuf this function owns.
        let b = unsafe {
            match op {
                0 => !dpdk_sys::shim_rte_pktmbuf_prepend(theirs, len).is_null(),
                1 => !dpdk_sys::shim_rte_pktmbuf_append(theirs, len).is_null(),
                2 => !dpdk_sys::shim_rte_pktmbuf_adj(theirs, len).is_null(),
                _ => dpdk_sys::shim_rte_pktmbuf_trim(theirs, len) == 0,
            }
        };
        assert_eq!(a, b, "step {step}: op {op} len {len}");
        assert_eq!(state(&ours), state(&t), "step {step}: op {op} len {len}");
        let _ = t.into_raw();
    }
    drop(view(theirs));
}

fn burst_ops(pool: &Mempool) {
    let mut b: Burst<32> = Burst::new();
    assert!(pool.alloc_bulk(&mut b, 20));
    assert_eq!(b.len(), 20);
    assert!(!pool.alloc_bulk(&mut b, 13), "more than the room is refused");
    assert_eq!(b.len(), 20);
    assert_eq!(pool.available(), 1023 - 20);
    for (i, m) in b.as_mut_slice().iter_mut().enumerate() {
        m.append(64).unwrap()[0] = i as u8;
    }
    let mut rejected = Vec::new();
    b.retain_or(|m| m.data()[0] % 2 == 0, |m| rejected.push(m.data()[0]));
    assert_eq!(b.len(), 10);
    assert_eq!(rejected, (0..20).filter(|i| i % 2 == 1).collect::<Vec<u8>>());
    assert_eq!(pool.available(), 1023 - 10, "rejected mbufs were freed");
    let firsts: Vec<u8> = b.as_slice().iter().map(|m| m.data()[0]).collect();
    assert_eq!(firsts, vec![0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    let last = b.pop().unwrap();
    assert_eq!(last.data()[0], 18);
    drop(last);
    let drained: Vec<u8> = b.drain().map(|m| m.data()[0]).collect();
    assert_eq!(drained.len(), 9);
    assert!(b.is_empty());
    assert!(pool.alloc_bulk(&mut b, 32));
    assert!(b.push(pool.alloc().unwrap()).is_err(), "a full burst gives the mbuf back");
    drop(b);
}

fn ring_handoff(pool: &Mempool) {
    let ring = Ring::new("shim_test_ring", 64, true).unwrap();
    let mut b: Burst<32> = Burst::new();
    assert!(pool.alloc_bulk(&mut b, 32));
    for (i, m) in b.as_mut_slice().iter_mut().enumerate() {
        m.append(1).unwrap()[0] = i as u8;
    }
    assert_eq!(ring.enqueue_burst(&mut b), 32);
    assert!(b.is_empty());
    assert_eq!(ring.count(), 32);
    let mut out: Burst<16> = Burst::new();
    assert_eq!(ring.dequeue_burst(&mut out), 16);
    assert_eq!(out.as_slice()[15].data()[0], 15);
    out.clear();
    assert_eq!(ring.dequeue_burst(&mut out), 16);
    assert_eq!(out.as_slice()[0].data()[0], 16);
}

fn port_loopback(pool: &Mempool) {
    let port = Port::by_name("net_ring0").unwrap();
    assert_eq!(Port::all(), vec![port]);
    assert!(Port::new(7).is_err());
    let info = port.info().unwrap();
    assert_eq!(info.driver, "net_ring");
    let too_many = PortConfig { rx_queues: info.max_rx_queues + 1, ..PortConfig::default() };
    let err = port.configure(&too_many, pool).unwrap_err().to_string();
    assert!(err.contains("RX queues asked"), "{err}");
    port.configure(&PortConfig::default(), pool).unwrap();
    port.start().unwrap();
    assert!(port.link().unwrap().up);

    // net_ring's TX ring is its RX ring: what we send comes back.
    let mut tx: Burst<32> = Burst::new();
    for i in 0..8u8 {
        let mut m = pool.alloc().unwrap();
        m.append(60).unwrap().fill(i);
        tx.push(m).unwrap();
    }
    assert_eq!(port.tx_burst(0, &mut tx), 8);
    assert!(tx.is_empty());
    let mut rx: Burst<32> = Burst::new();
    assert_eq!(port.rx_burst(0, &mut rx), 8);
    for (i, m) in rx.as_slice().iter().enumerate() {
        assert_eq!(m.data(), &[i as u8; 60][..]);
    }
    let s = port.stats().unwrap();
    // net_ring counts packets only (its byte counters stay at zero).
    assert_eq!((s.opackets, s.ipackets), (8, 8));
    rx.clear();
    port.stop().unwrap();
    port.close().unwrap();
}

fn lcore_launch() {
    assert_eq!(lcore::id(), 0, "the test thread is the main lcore");
    assert_eq!(lcore::workers(), vec![1]);
    let t0 = lcore::tsc();
    lcore::launch(1, || lcore::id() as i32 + 40).unwrap();
    assert_eq!(lcore::wait(1), 41);
    lcore::launch(1, || panic!("a worker panic is contained")).unwrap();
    assert_eq!(lcore::wait(1), -1);
    assert!(lcore::tsc() > t0);
    assert!(lcore::tsc_hz() > 100_000_000);
    // The inline read is DPDK's counter: between two of ours, the shim's rte_rdtsc.
    let a = lcore::tsc();
    // SAFETY: reads the TSC; no preconditions.
    let b = unsafe { dpdk_sys::shim_rte_rdtsc() };
    let c = lcore::tsc();
    assert!(a <= b && b <= c && c - a < lcore::tsc_hz(), "{a} {b} {c}");
}
