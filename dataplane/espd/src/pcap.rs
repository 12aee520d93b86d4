//! Minimal classic-pcap (libpcap 2.4, Ethernet link type) reader and writer, for the
//! pcap-driven runs and tests. Reading is strict: a truncated or foreign file is an error,
//! never a panic.

use std::io::{self, Read, Write};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record we accept: well above any Ethernet frame we handle.
const MAX_RECORD: u32 = 256 * 1024;

/// Writes a pcap file header (microsecond timestamps, Ethernet).
pub fn write_header(w: &mut impl Write) -> io::Result<()> {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_US.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&65535u32.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    w.write_all(&h)
}

/// Writes one record with timestamp `ts_us` microseconds.
pub fn write_packet(w: &mut impl Write, ts_us: u64, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    w.write_all(&h)?;
    w.write_all(frame)
}

/// Writes a whole capture.
pub fn write_all<'a>(w: &mut impl Write, frames: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
    write_header(w)?;
    for (i, f) in frames.into_iter().enumerate() {
        write_packet(w, i as u64, f)?;
    }
    Ok(())
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("pcap: {what}"))
}

/// Reads every frame of a capture (either byte order, µs or ns timestamps, Ethernet).
pub fn read_all(r: &mut impl Read) -> io::Result<Vec<Vec<u8>>> {
    let mut h = [0u8; 24];
    r.read_exact(&mut h).map_err(|_| bad("file shorter than its header"))?;
    let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let swapped = match magic {
        MAGIC_US | MAGIC_NS => false,
        m if m.swap_bytes() == MAGIC_US || m.swap_bytes() == MAGIC_NS => true,
        _ => return Err(bad("not a pcap file (bad magic)")),
    };
    let word = |b: &[u8]| {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if swapped {
            v.swap_bytes()
        } else {
            v
        }
    };
    if word(&h[20..24]) & 0xffff != LINKTYPE_ETHERNET {
        return Err(bad("link type is not Ethernet"));
    }
    let mut frames = Vec::new();
    loop {
        let mut rec = [0u8; 16];
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(frames),
            Err(e) => return Err(e),
        }
        let caplen = word(&rec[8..12]);
        if caplen > MAX_RECORD {
            return Err(bad("record larger than 256 KiB"));
        }
        let mut f = vec![0u8; caplen as usize];
        r.read_exact(&mut f).map_err(|_| bad("truncated record"))?;
        frames.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_files() {
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 60 + usize::from(i)]).collect();
        let mut out = Vec::new();
        write_all(&mut out, frames.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(out.len(), 24 + 5 * 16 + (60 + 61 + 62 + 63 + 64));
        assert_eq!(read_all(&mut out.as_slice()).unwrap(), frames);

        assert!(read_all(&mut &out[..10]).is_err(), "short header");
        assert!(read_all(&mut &out[..out.len() - 1]).is_err(), "truncated record");
        let mut bad_magic = out.clone();
        bad_magic[0] ^= 0xff;
        assert!(read_all(&mut bad_magic.as_slice()).is_err());
        let mut huge = out.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_all(&mut huge.as_slice()).is_err(), "absurd record length");
    }
}
