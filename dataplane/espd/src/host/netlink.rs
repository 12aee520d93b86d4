//! A synchronous netlink request: send one message, collect the answers until the kernel's
//! acknowledgement (or its error). espd talks to the kernel a dozen times at start, from the
//! supervisor thread, so a blocking socket is all it needs: no async runtime.

use std::fmt::Debug;
use std::io;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_ACK,
    NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// One netlink socket of one protocol (`NETLINK_ROUTE`, `NETLINK_GENERIC`).
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// A socket of `protocol` (`netlink_sys::protocols::*`), bound and connected to the
    /// kernel.
    pub fn open(protocol: isize) -> io::Result<Netlink> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends `payload` with `NLM_F_REQUEST | NLM_F_ACK | flags` and returns the messages the
    /// kernel answered with before its acknowledgement; the kernel's error as an
    /// `io::Error` (`EEXIST`, `EPERM`, ...).
    pub fn request<T>(&mut self, payload: T, flags: u16) -> io::Result<Vec<T>>
    where
        T: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut answers = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut rest = data.as_slice();
            while !rest.is_empty() {
                let m = NetlinkMessage::<T>::deserialize(rest).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}"))
                })?;
                let len = (m.header.length as usize).next_multiple_of(4);
                rest = rest.get(len..).unwrap_or_default();
                if len == 0 {
                    break;
                }
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }
}

/// Appends one netlink attribute (type, length, value, padding to 4 bytes) to `buf`.
pub fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The attributes of `buf` as (type without flags, value); stops at the first malformed one.
pub fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & netlink_packet_core::NLA_TYPE_MASK;
        let Some(value) = rest.get(4..len) else { break };
        out.push((kind, value));
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_truncation_stops_the_walk() {
        let mut buf = Vec::new();
        put_attr(&mut buf, 2, b"tx-checksum-ipv4\0");
        put_attr(&mut buf, 3 | netlink_packet_core::NLA_F_NESTED, &[]);
        put_attr(&mut buf, 1, &7u32.to_ne_bytes());
        assert_eq!(buf.len() % 4, 0);
        let got = attrs(&buf);
        assert_eq!(got, vec![(2, &b"tx-checksum-ipv4\0"[..]), (3, &[][..]), (1, &7u32.to_ne_bytes()[..])]);
        for cut in 0..buf.len() {
            assert!(attrs(&buf[..cut]).len() <= 3);
        }
        // A length below the header's own size ends the walk instead of looping.
        assert!(attrs(&[2, 0, 1, 0, 9, 9, 9, 9]).is_empty());
    }
}
