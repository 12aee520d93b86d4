//! Ethdev ports through the generic API only, so the same code drives virtio-net in a VM,
//! a PCI NIC, or the virtual devices (`net_null`, `net_ring`, `net_pcap`, `net_af_packet`,
//! `net_tap`, `net_virtio_user`).

use std::ffi::{CStr, CString};

use crate::{Burst, Error, Mempool, Result};

/// An ethdev port, by its DPDK port id. Copyable: DPDK's rule is one thread per queue, so
/// the caller gives each worker its own queue numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    id: u16,
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
    pub fn new(id: u16) -> Result<Port> {
        // SAFETY: a plain query by value.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 1 {
            Ok(Port { id })
        } else {
            Err(Error::new(format!("port {id} does not exist"), 19))
        }
    }

    /// The port whose device name (e.g. `net_pcap0`, `0000:00:04.0`) is `name`.
    pub fn by_name(name: &str) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| Error::new(format!("port name {name:?}"), 22))?;
        let mut id = 0u16;
        // SAFETY: valid NUL-terminated name and a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        Error::check(|| format!("no port named {name}"), ret)?;
        Ok(Port { id })
    }

    /// Every port the EAL found (not owned by another component), in id order.
    pub fn all() -> Vec<Port> {
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
            ports.push(Port { id: next as u16 });
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
        })
    }

    /// Configures the port and sets up its queues, drawing RX buffers from `pool`. The port
    /// must be stopped. RSS is asked for only when there are several RX queues and the
    /// device offers it; otherwise a single queue gets every packet.
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<()> {
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
        Ok(())
    }

    /// Starts the port.
    pub fn start(&self) -> Result<()> {
        // SAFETY: a plain call by value; DPDK checks the port's state.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        Error::check(|| format!("rte_eth_dev_start(port {})", self.id), ret).map(drop)
    }

    /// Stops the port.
    pub fn stop(&self) -> Result<()> {
        // SAFETY: a plain call by value; DPDK checks the port's state.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        Error::check(|| format!("rte_eth_dev_stop(port {})", self.id), ret).map(drop)
    }

    /// Closes the port (after stop), releasing its queues.
    pub fn close(&self) -> Result<()> {
        // SAFETY: a plain call by value; DPDK checks the port's state.
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

    /// Sets the port's MAC address (a TAP given the MAC of the port it stands in for).
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

    /// Receives up to `burst.room()` packets from `queue` into `burst`; returns how many.
    /// Only one thread may poll a given queue.
    #[inline]
    pub fn rx_burst<const N: usize>(&self, queue: u16, burst: &mut Burst<N>) -> usize {
        self.rx_burst_limited(queue, burst, N)
    }

    /// As [`Port::rx_burst`], receiving at most `max` packets.
    #[inline]
    pub fn rx_burst_limited<const N: usize>(&self, queue: u16, burst: &mut Burst<N>, max: usize) -> usize {
        let room = burst.room().min(max) as u16;
        // SAFETY: the burst has `room` free slots for the driver to write owned mbuf
        // pointers into; DPDK validates port and queue in debug builds only, so callers
        // must use a configured, started queue (Port values come from configured ports).
        let n = usize::from(unsafe {
            dpdk_sys::shim_rte_eth_rx_burst(self.id, queue, burst.free_slots_ptr(), room)
        });
        // SAFETY: the driver wrote n valid mbuf pointers it no longer owns.
        unsafe { burst.commit_filled(n) };
        n
    }

    /// Sends the packets of `burst` on `queue`; returns how many the driver took. Those
    /// leave the burst; the rest stay in it, in order, for the caller to retry or free.
    #[inline]
    pub fn tx_burst<const N: usize>(&self, queue: u16, burst: &mut Burst<N>) -> usize {
        let len = burst.len() as u16;
        // SAFETY: the burst's held prefix is `len` valid owned mbuf pointers.
        let n =
            usize::from(unsafe { dpdk_sys::shim_rte_eth_tx_burst(self.id, queue, burst.held_ptr(), len) });
        // SAFETY: the driver took ownership of the first n.
        unsafe { burst.commit_taken(n) };
        n
    }
}
