//! The ports as espd sees them, published read-only for `espctl ports`: a small JSON file
//! beside the SA database (`SADB.ports`, e.g. `/run/espgw/sadb.ports`), written by the
//! supervisor at start, once the ports run and the TAP's host side is set up (so its
//! existence means "espd is ready"), then every second, and removed at a clean exit. It is
//! replaced whole (written to `SADB.ports.tmp`, then renamed), so a reader never sees half a
//! file. The database itself carries no per-port data: it is the contract between iked and
//! espd, and ports are espd's alone.
//!
//! ```json
//! {"pid": 4242, "updated_unix": 1765000000, "ports": [
//!   {"id": 0, "name": "outside", "device": "net_af_packet0", "role": "outside",
//!    "mac": "02:00:00:00:01:01", "link_up": true, "speed_mbps": 10000, "mtu": 1500,
//!    "addresses": ["198.18.0.1/24"], "interface": null, "rx_packets": 12, "tx_packets": 9,
//!    "rx_bytes": 1480, "tx_bytes": 1100, "rx_missed": 0, "rx_errors": 0, "tx_errors": 0,
//!    "rx_nombuf": 0}, ...]}
//! ```
//!
//! The exception TAP is the last entry, with role `exception` and its kernel `interface`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One port.
#[derive(Debug, Clone, Serialize)]
pub struct PortStatus {
    /// The DPDK port id.
    pub id: u16,
    /// The configuration's name (`outside`), or `exception` for the TAP.
    pub name: String,
    /// The DPDK device name.
    pub device: String,
    /// `inside`, `outside`, `both` or `exception`.
    pub role: String,
    /// Its MAC address.
    pub mac: String,
    /// Link state.
    pub link_up: bool,
    /// Link speed in Mbit/s (0: unknown).
    pub speed_mbps: u32,
    /// The configured MTU.
    pub mtu: u16,
    /// Its addresses (for the TAP: those its host side got).
    pub addresses: Vec<String>,
    /// The kernel interface behind it (the TAP's), if any.
    pub interface: Option<String>,
    /// Device counters.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Dropped by the device for lack of RX descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// The whole file.
#[derive(Debug, Clone, Serialize)]
pub struct PortsFile {
    /// espd's process id.
    pub pid: u32,
    /// When it was written (seconds since the epoch).
    pub updated_unix: u64,
    /// Every port, the exception TAP last.
    pub ports: Vec<PortStatus>,
}

/// The file beside the SA database at `sadb`.
pub fn path_for(sadb: &Path) -> PathBuf {
    let mut p = sadb.as_os_str().to_owned();
    p.push(".ports");
    PathBuf::from(p)
}

/// Replaces the file at `path` with `file` (mode 0644: nothing in it is secret).
pub fn write(path: &Path, file: &PortsFile) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec(file).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    f.write_all(&text)?;
    f.write_all(b"\n")?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_beside_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("sadb"));
        assert_eq!(path, dir.path().join("sadb.ports"));
        let file = PortsFile { pid: 7, updated_unix: 1, ports: Vec::new() };
        write(&path, &file).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["pid"], 7);
        assert!(!dir.path().join("sadb.ports.tmp").exists());
    }
}
