//! Exercises the C shim and the safe layer in one process: the EAL can be initialised only
//! once per process, so this file holds a single test that walks through every part.

use dpdk::{lcore, Burst, Eal, Mempool, Multi, Port, PortConfig, Ring, Single};

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
    let eal = eal();
    assert!(Eal::init("again", &["--no-pci"]).is_err(), "a second EAL init is refused");

    let pool = Mempool::new(&eal, "shim_test_pool", 1023, 0, Mempool::DEFAULT_DATA_ROOM, None).unwrap();
    let full = pool.available();
    assert_eq!(full, 1023);

    mbuf_edits(&pool);
    assert_eq!(pool.available(), full, "every mbuf went back to the pool");

    burst_ops(&pool);
    assert_eq!(pool.available(), full, "bursts free what they hold");

    ring_handoff(&eal, &pool);
    assert_eq!(pool.available(), full);

    shared_mbufs(&pool);
    assert_eq!(pool.available(), full);

    port_loopback(&eal, &pool);
    lcore_launch(&eal);

    // The token is only one of the holders: the pool keeps the EAL alive, so dropping
    // `eal` here does not clean it up under the pool.
    drop(eal);
    let m = pool.alloc().expect("the pool still works after the Eal value is dropped");
    assert_eq!(pool.available(), full - 1);
    drop(m);
    assert_eq!(pool.size(), 1023);
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
    let (buf, off, len) = m.buffer_mut().unwrap();
    assert_eq!((off, len), (128, 50));
    buf[off - 4..off].copy_from_slice(&[1, 2, 3, 4]);
    assert!(m.set_data(124, 54));
    assert_eq!(&m.data()[..5], &[1, 2, 3, 4, 0]);
    assert_eq!(m.pkt_len(), 54);
    assert!(!m.set_data(2100, 100), "extent past the buffer is refused");

    assert!(m.is_exclusive());
    m.data_mut().expect("a fresh mbuf is exclusive")[0] = 0xaa;
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

fn ring_handoff(eal: &Eal, pool: &Mempool) {
    let (tx, rx) = Ring::create::<Single, Single>(eal, "shim_test_ring", 64).unwrap();
    let mut b: Burst<32> = Burst::new();
    assert!(pool.alloc_bulk(&mut b, 32));
    for (i, m) in b.as_mut_slice().iter_mut().enumerate() {
        m.append(1).unwrap()[0] = i as u8;
    }
    // The single-producer end moves to another thread (Send) and feeds the ring there.
    let tx = std::thread::spawn(move || {
        assert_eq!(tx.enqueue_burst(&mut b), 32);
        assert!(b.is_empty());
        tx
    })
    .join()
    .unwrap();
    assert_eq!(tx.count(), 32);
    assert_eq!(rx.count(), 32);
    let mut out: Burst<16> = Burst::new();
    assert_eq!(rx.dequeue_burst(&mut out), 16);
    assert_eq!(out.as_slice()[15].data()[0], 15);
    out.clear();
    assert_eq!(rx.dequeue_burst(&mut out), 16);
    assert_eq!(out.as_slice()[0].data()[0], 16);
    out.clear();

    // Multi-producer ends are shared: two threads feed one single-consumer end.
    let (mp, sc) = Ring::create::<Multi, Single>(eal, "shim_test_mpsc", 64).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let mp = mp.clone();
            s.spawn(move || {
                let mut b: Burst<8> = Burst::new();
                assert!(pool.alloc_bulk(&mut b, 8));
                b.as_mut_slice().iter_mut().for_each(|m| m.append(1).unwrap()[0] = t);
                assert_eq!(mp.enqueue_burst(&mut b), 8);
            });
        }
    });
    let mut all: Burst<32> = Burst::new();
    assert_eq!(sc.dequeue_burst(&mut all), 16);
    assert_eq!(all.as_slice().iter().filter(|m| m.data()[0] == 1).count(), 8);
}

/// Writable views are refused for a buffer two mbufs share: the original of a clone (its
/// reference count is 2) and the clone itself (an indirect mbuf).
fn shared_mbufs(pool: &Mempool) {
    let mut m = pool.alloc().unwrap();
    m.append(64).unwrap().fill(7);
    let raw = m.into_raw();
    // SAFETY: `raw` is a valid mbuf of `pool`; DPDK creates an indirect mbuf attached to
    // its buffer (or returns NULL), taking a reference on it.
    let clone_raw = unsafe { dpdk_sys::rte_pktmbuf_clone(raw, pool.as_raw()) };
    assert!(!clone_raw.is_null());
    // SAFETY: reads of valid mbufs.
    let (rc, orig_shared, clone_shared) = unsafe {
        (
            dpdk_sys::shim_rte_mbuf_refcnt_read(raw),
            dpdk_sys::shim_rte_mbuf_is_shared_buffer(raw),
            dpdk_sys::shim_rte_mbuf_is_shared_buffer(clone_raw),
        )
    };
    assert_eq!(rc, 2, "DPDK: the clone holds a reference to the original");
    assert_eq!((orig_shared, clone_shared), (0, 1), "DPDK: the clone is indirect");
    // SAFETY: both pointers are valid mbufs this function owns, each exactly once.
    let (mut orig, mut clone) = unsafe { (dpdk::Mbuf::from_raw(raw), dpdk::Mbuf::from_raw(clone_raw)) };
    for (name, x) in [("original", &mut orig), ("clone", &mut clone)] {
        assert!(!x.is_exclusive(), "{name}");
        assert!(x.data_mut().is_none(), "{name}: data_mut refused");
        assert!(x.buffer_mut().is_none(), "{name}: buffer_mut refused");
        assert!(x.prepend(1).is_none(), "{name}: prepend refused");
        assert!(x.append(1).is_none(), "{name}: append refused");
        assert!(!x.set_data(0, 1), "{name}: set_data refused");
        assert_eq!(x.data(), &[7u8; 64][..], "{name}: still readable");
    }
    drop(clone);
    // SAFETY: a read of a valid mbuf.
    assert_eq!(unsafe { dpdk_sys::shim_rte_mbuf_refcnt_read(raw) }, 1);
    assert!(orig.is_exclusive(), "the original is exclusive again once the clone is freed");
    orig.data_mut().expect("writable again")[0] = 1;
}

fn port_loopback(eal: &Eal, pool: &Mempool) {
    let port = Port::by_name(eal, "net_ring0").unwrap();
    assert_eq!(Port::all(eal), vec![port.clone()]);
    assert!(Port::new(eal, 7).is_err());
    let info = port.info().unwrap();
    assert_eq!(info.driver, "net_ring");
    assert!(port.rx_queue(0).is_err(), "no queue handle before the port is configured");
    let too_many = PortConfig { rx_queues: info.max_rx_queues + 1, ..PortConfig::default() };
    let err = port.configure(&too_many, pool).unwrap_err().to_string();
    assert!(err.contains("RX queues asked"), "{err}");
    port.configure(&PortConfig::default(), pool).unwrap();

    // One handle per configured queue, and only one at a time.
    let err = port.rx_queue(1).unwrap_err().to_string();
    assert!(err.contains("RX queue 1 out of range (1 configured)"), "{err}");
    let err = port.tx_queue(5).unwrap_err().to_string();
    assert!(err.contains("TX queue 5 out of range (1 configured)"), "{err}");
    let mut rxq = port.rx_queue(0).unwrap();
    let txq = port.tx_queue(0).unwrap();
    assert_eq!((rxq.port_id(), rxq.queue_id()), (port.id(), 0));
    let err = port.rx_queue(0).unwrap_err().to_string();
    assert!(err.contains("already has a handle"), "{err}");
    let err = port.configure(&PortConfig::default(), pool).unwrap_err().to_string();
    assert!(err.contains("2 queue handle(s) still in use"), "{err}");
    port.start().unwrap();
    assert!(port.link().unwrap().up);

    // The TX handle moves to another thread (Send) and sends there; net_ring's TX ring is
    // its RX ring: what we send comes back.
    let txq = std::thread::spawn({
        let pool = pool.clone();
        move || {
            let mut txq = txq;
            let mut tx: Burst<32> = Burst::new();
            for i in 0..8u8 {
                let mut m = pool.alloc().unwrap();
                m.append(60).unwrap().fill(i);
                tx.push(m).unwrap();
            }
            assert_eq!(txq.tx_burst(&mut tx), 8);
            assert!(tx.is_empty());
            txq
        }
    })
    .join()
    .unwrap();
    let mut rx: Burst<32> = Burst::new();
    assert_eq!(rxq.rx_burst(&mut rx), 8);
    for (i, m) in rx.as_slice().iter().enumerate() {
        assert_eq!(m.data(), &[i as u8; 60][..]);
    }
    let s = port.stats().unwrap();
    // net_ring counts packets only (its byte counters stay at zero).
    assert_eq!((s.opackets, s.ipackets), (8, 8));
    rx.clear();
    let err = port.stop().unwrap_err().to_string();
    assert!(err.contains("still in use, cannot stop"), "{err}");
    let err = port.close().unwrap_err().to_string();
    assert!(err.contains("still in use, cannot close"), "{err}");
    drop((rxq, txq));
    port.stop().unwrap();
    // Dropped handles free their queues: taken again, then given back.
    drop(port.rx_queue(0).unwrap());
    port.close().unwrap();
    assert!(port.tx_queue(0).is_err(), "a closed port has no queues");
}

fn lcore_launch(eal: &Eal) {
    assert_eq!(lcore::id(), 0, "the test thread is the main lcore");
    assert_eq!(lcore::workers(eal), vec![1]);
    let t0 = lcore::tsc();
    lcore::launch(eal, 1, || lcore::id() as i32 + 40).unwrap();
    assert_eq!(lcore::wait(eal, 1), 41);
    lcore::launch(eal, 1, || panic!("a worker panic is contained")).unwrap();
    assert_eq!(lcore::wait(eal, 1), -1);
    assert!(lcore::tsc() > t0);
    assert!(lcore::tsc_hz() > 100_000_000);
    // The inline read is DPDK's counter: between two of ours, the shim's rte_rdtsc.
    let a = lcore::tsc();
    // SAFETY: reads the TSC; no preconditions.
    let b = unsafe { dpdk_sys::shim_rte_rdtsc() };
    let c = lcore::tsc();
    assert!(a <= b && b <= c && c - a < lcore::tsc_hz(), "{a} {b} {c}");
}
