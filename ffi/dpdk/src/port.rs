//! Ethdev ports through the generic API only, so the same code drives virtio-net in a VM,
//! a PCI NIC, or the virtual devices (`net_null`, `net_ring`, `net_pcap`, `net_af_packet`,
//! `net_tap`, `net_virtio_user`).

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;

use crate::eal::PortQueues;
use crate::{Burst, Eal, Error, Mempool, Result};

/// An ethdev port, by its DPDK port id, for control operations (configure, start, stop,
/// link, stats). Packets move only through queue handles ([`RxQueue`], [`TxQueue`]): DPDK's
/// rule is one thread per queue, and a queue handle is the one way to use a queue.
#[derive(Debug, Clone)]
pub struct Port {
    id: u16,
    eal: Eal,
}

impl PartialEq for Port {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Port {}

/// The receive side of one queue of one port, owned by the one lcore that polls it.
///
/// At most one handle per (port, queue) exists at a time ([`Port::rx_queue`] refuses a
/// second), it is `Send` (it moves to its lcore) but neither `Clone` nor `Sync`, and the
/// port cannot be reconfigured or closed while it lives. So no two threads poll one queue,
/// and no queue is polled that the port does not have.
///
/// ```compile_fail,E0599
/// fn f(q: dpdk::RxQueue) { let _r = q.clone(); }
/// ```
///
/// ```compile_fail,E0277
/// fn need_sync<T: Sync>() {}
/// need_sync::<dpdk::RxQueue>();
/// ```
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    eal: Eal,
    _one_thread: PhantomData<Cell<()>>,
}

/// The transmit side of one queue of one port; the same rules as [`RxQueue`].
///
/// ```compile_fail,E0599
/// fn f(q: dpdk::TxQueue) { let _r = q.clone(); }
/// ```
///
/// ```compile_fail,E0277
/// fn need_sync<T: Sync>() {}
/// need_sync::<dpdk::TxQueue>();
/// ```
///
/// ```
/// fn need_send<T: Send>() {}
/// need_send::<dpdk::TxQueue>();
/// need_send::<dpdk::RxQueue>();
/// ```
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    eal: Eal,
    _one_thread: PhantomData<Cell<()>>,
}

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// RX queues (one per worker polling the port).
    pub rx_queues: u16,
    /// TX queues (one per worker sending on the port).
    pub tx_queues: u16,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Spread flows over the RX queues by an RSS hash of the IP addresses (and UDP ports,
    /// so UDP-encapsulated ESP spreads too) where the device supports it.
    pub rss: bool,
    /// Receive every frame, whatever its destination MAC.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: true, promiscuous: true }
    }
}

/// What a port's driver reports about itself.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// The driver, e.g. `net_pcap` or `net_virtio`.
    pub driver: String,
    /// Largest number of RX queues.
    pub max_rx_queues: u16,
    /// Largest number of TX queues.
    pub max_tx_queues: u16,
    /// RSS hash types the device offers (0: no RSS).
    pub rss_offloads: u64,
    /// The kernel interface behind the port (`net_tap`, `net_af_packet`), 0 when none.
    pub if_index: u32,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
}

/// A port's hardware counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped for lack of RX descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

impl Port {
    /// The port with this id, if it exists.
    pub fn new(eal: &Eal, id: u16) -> Result<Port> {
        // SAFETY: a plain query by value; the EAL is initialised (the token exists).
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 1 {
            Ok(Port { id, eal: eal.clone() })
        } else {
            Err(Error::new(format!("port {id} does not exist"), 19))
        }
    }

    /// The port whose device name (e.g. `net_pcap0`, `0000:00:04.0`) is `name`.
    pub fn by_name(eal: &Eal, name: &str) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| Error::new(format!("port name {name:?}"), 22))?;
        let mut id = 0u16;
        // SAFETY: valid NUL-terminated name and a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        Error::check(|| format!("no port named {name}"), ret)?;
        Ok(Port { id, eal: eal.clone() })
    }

    /// Every port the EAL found (not owned by another component), in id order.
    pub fn all(eal: &Eal) -> Vec<Port> {
        let mut ports = Vec::new();
        let mut id: u64 = 0;
        loop {
            // SAFETY: a plain query by value.
            let next = unsafe {
                dpdk_sys::rte_eth_find_next_owned_by(id as u16, u64::from(dpdk_sys::RTE_ETH_DEV_NO_OWNER))
            };
            if next >= u64::from(dpdk_sys::RTE_MAX_ETHPORTS) {
                break;
            }
            ports.push(Port { id: next as u16, eal: eal.clone() });
            id = next + 1;
        }
        ports
    }

    /// The DPDK port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name.
    pub fn name(&self) -> String {
        let mut buf = [0 as std::ffi::c_char; 64];
        // SAFETY: buf is a writable buffer of 64 bytes, which is RTE_ETH_NAME_MAX_LEN.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
        if ret != 0 {
            return format!("port{}", self.id);
        }
        // SAFETY: DPDK wrote a NUL-terminated string into buf.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    /// What the driver reports.
    pub fn info(&self) -> Result<PortInfo> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid out pointer to a zeroed rte_eth_dev_info.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) };
        Error::check(|| format!("rte_eth_dev_info_get(port {})", self.id), ret)?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points to the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            if_index: info.if_index,
        })
    }

    /// Configures the port and sets up its queues, drawing RX buffers from `pool`. The port
    /// must be stopped, and no handle of its queues may be alive. RSS is asked for only when
    /// there are several RX queues and the device offers it; otherwise a single queue gets
    /// every packet. Take the queues' handles afterwards with [`Port::rx_queue`] and
    /// [`Port::tx_queue`].
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<()> {
        // Held across the reconfiguration, so no queue handle appears meanwhile.
        let mut all = self.eal.queues();
        if let Some(q) = all.get(&self.id) {
            if q.live() > 0 {
                return Err(Error::new(
                    format!(
                        "port {}: {} queue handle(s) still in use, cannot reconfigure",
                        self.id,
                        q.live()
                    ),
                    16,
                ));
            }
        }
        // Until the queues are set up again, none may be taken.
        all.remove(&self.id);
        let info = self.info()?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues.max(1) {
            return Err(Error::new(
                format!(
                    "port {} ({}): {} RX queues asked, the device has {}",
                    self.id, info.driver, cfg.rx_queues, info.max_rx_queues
                ),
                22,
            ));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues.max(1) {
            return Err(Error::new(
                format!(
                    "port {} ({}): {} TX queues asked, the device has {}",
                    self.id, info.driver, cfg.tx_queues, info.max_tx_queues
                ),
                22,
            ));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        if cfg.rss && cfg.rx_queues > 1 && info.rss_offloads != 0 {
            // SAFETY: the shim functions return constants.
            let wanted = unsafe {
                dpdk_sys::shim_rte_eth_rss_ip()
                    | dpdk_sys::shim_rte_eth_rss_udp()
                    | dpdk_sys::shim_rte_eth_rss_tcp()
            };
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = wanted & info.rss_offloads;
        }
        // SAFETY: conf is a fully initialised rte_eth_conf that DPDK copies.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        Error::check(|| format!("rte_eth_dev_configure(port {})", self.id), ret)?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid out pointers; DPDK clamps the counts to what the device supports.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc) };
        Error::check(|| format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {})", self.id), ret)?;
        // SAFETY: a plain query by value.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            // SAFETY: the port is configured with this many queues; a NULL rx_conf means the
            // driver's defaults; the pool outlives the port (pools are never freed).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(self.id, q, rx_desc, socket, std::ptr::null(), pool.as_ptr())
            };
            Error::check(|| format!("rte_eth_rx_queue_setup(port {}, queue {q})", self.id), ret)?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above; a NULL tx_conf means the driver's defaults.
            let ret =
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket, std::ptr::null()) };
            Error::check(|| format!("rte_eth_tx_queue_setup(port {}, queue {q})", self.id), ret)?;
        }
        if cfg.promiscuous {
            // Not every virtual device can (net_null cannot); that is not an error.
            // SAFETY: a plain call by value on a configured port.
            let _ = unsafe { dpdk_sys::rte_eth_promiscuous_enable(self.id) };
        }
        all.insert(
            self.id,
            PortQueues {
                rx_taken: vec![false; usize::from(cfg.rx_queues)],
                tx_taken: vec![false; usize::from(cfg.tx_queues)],
            },
        );
        Ok(())
    }

    /// The handle of RX queue `queue`: an error if the port was not configured with that
    /// queue, or if a handle of it is alive already.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue> {
        self.take(queue, true)?;
        Ok(RxQueue { port: self.id, queue, eal: self.eal.clone(), _one_thread: PhantomData })
    }

    /// The handle of TX queue `queue`, as [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue> {
        self.take(queue, false)?;
        Ok(TxQueue { port: self.id, queue, eal: self.eal.clone(), _one_thread: PhantomData })
    }

    fn take(&self, queue: u16, rx: bool) -> Result<()> {
        let dir = if rx { "RX" } else { "TX" };
        let mut all = self.eal.queues();
        let Some(q) = all.get_mut(&self.id) else {
            return Err(Error::new(format!("port {}: not configured, no {dir} queue {queue}", self.id), 22));
        };
        let taken = if rx { &mut q.rx_taken } else { &mut q.tx_taken };
        let n = taken.len();
        match taken.get_mut(usize::from(queue)) {
            None => Err(Error::new(
                format!("port {}: {dir} queue {queue} out of range ({n} configured)", self.id),
                22,
            )),
            Some(true) => {
                Err(Error::new(format!("port {}: {dir} queue {queue} already has a handle", self.id), 16))
            }
            Some(t) => {
                *t = true;
                Ok(())
            }
        }
    }

    /// Starts the port.
    pub fn start(&self) -> Result<()> {
        // SAFETY: a plain call by value; DPDK checks the port's state.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        Error::check(|| format!("rte_eth_dev_start(port {})", self.id), ret).map(drop)
    }

    /// Stops the port: an error while a handle of one of its queues is alive.
    pub fn stop(&self) -> Result<()> {
        // DPDK forbids a burst on a queue while its port stops (drivers free the mbufs of
        // their rings): held across the call, so no queue handle appears meanwhile.
        let all = self.eal.queues();
        if let Some(q) = all.get(&self.id) {
            if q.live() > 0 {
                return Err(Error::new(
                    format!("port {}: {} queue handle(s) still in use, cannot stop", self.id, q.live()),
                    16,
                ));
            }
        }
        // SAFETY: a plain call by value; DPDK checks the port's state; no queue handle of the
        // port is alive, so no burst runs on it.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        Error::check(|| format!("rte_eth_dev_stop(port {})", self.id), ret).map(drop)
    }

    /// Closes the port (after stop), releasing its queues: an error while a handle of one of
    /// them is alive.
    pub fn close(&self) -> Result<()> {
        let mut all = self.eal.queues();
        if let Some(q) = all.get(&self.id) {
            if q.live() > 0 {
                return Err(Error::new(
                    format!("port {}: {} queue handle(s) still in use, cannot close", self.id, q.live()),
                    16,
                ));
            }
        }
        all.remove(&self.id);
        // SAFETY: a plain call by value; DPDK checks the port's state; no queue handle is
        // alive and none can be taken until the port is configured again.
        let ret = unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
        Error::check(|| format!("rte_eth_dev_close(port {})", self.id), ret).map(drop)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        Error::check(|| format!("rte_eth_macaddr_get(port {})", self.id), ret)?;
        Ok(addr.addr_bytes)
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`: a TAP given the MAC
    /// of the port it stands in for, a port given its configured MAC). Devices that cannot
    /// change it answer with an error (`ENOTSUP`).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        let mut addr = dpdk_sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: a valid pointer to an initialised address for the duration of the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(self.id, &mut addr) };
        Error::check(|| format!("rte_eth_dev_default_mac_addr_set(port {})", self.id), ret).map(drop)
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<Link> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        Error::check(|| format!("rte_eth_link_get_nowait(port {})", self.id), ret)?;
        Ok(Link { up: link.link_status() != 0, speed_mbps: link.link_speed })
    }

    /// The device's counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        Error::check(|| format!("rte_eth_stats_get(port {})", self.id), ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }
}

fn release(eal: &Eal, port: u16, queue: u16, rx: bool) {
    if let Some(q) = eal.queues().get_mut(&port) {
        let taken = if rx { &mut q.rx_taken } else { &mut q.tx_taken };
        if let Some(t) = taken.get_mut(usize::from(queue)) {
            *t = false;
        }
    }
}

impl RxQueue {
    /// The port's id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue's number.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives up to `burst.room()` packets into `burst`; returns how many.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        self.rx_burst_limited(burst, N)
    }

    /// As [`RxQueue::rx_burst`], receiving at most `max` packets.
    #[inline]
    pub fn rx_burst_limited<const N: usize>(&mut self, burst: &mut Burst<N>, max: usize) -> usize {
        let room = burst.room().min(max) as u16;
        // SAFETY: this handle is the only one of a queue the port was configured with (checked
        // when it was taken; the port cannot be reconfigured or closed while it lives), used by
        // one thread (`&mut self`, not Sync); the burst has `room` free slots for the driver to
        // write owned mbuf pointers into. A stopped port's queues answer 0.
        let n = usize::from(unsafe {
            dpdk_sys::shim_rte_eth_rx_burst(self.port, self.queue, burst.free_slots_ptr(), room)
        });
        // SAFETY: the driver wrote n valid mbuf pointers it no longer owns.
        unsafe { burst.commit_filled(n) };
        n
    }
}

impl TxQueue {
    /// The port's id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue's number.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Sends the packets of `burst`; returns how many the driver took. Those leave the
    /// burst; the rest stay in it, in order, for the caller to retry or free.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        let len = burst.len() as u16;
        // SAFETY: as in RxQueue::rx_burst_limited (one live handle of a configured queue, one
        // thread); the burst's held prefix is `len` valid owned mbuf pointers.
        let n = usize::from(unsafe {
            dpdk_sys::shim_rte_eth_tx_burst(self.port, self.queue, burst.held_ptr(), len)
        });
        // SAFETY: the driver took ownership of the first n.
        unsafe { burst.commit_taken(n) };
        n
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        release(&self.eal, self.port, self.queue, true);
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        release(&self.eal, self.port, self.queue, false);
    }
}
