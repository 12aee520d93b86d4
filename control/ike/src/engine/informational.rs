//! Informational exchanges (RFC 2409 §5.7): protected Notify and Delete,
//! INITIAL-CONTACT (RFC 2407 §4.6.3.3), DPD R-U-THERE/ACK (RFC 3706 §5).
//!
//! ```text
//!       HDR*, HASH(1), N/D          -->
//! HASH(1) = prf(SKEYID_a, M-ID | N/D)
//! ```

use super::{
    after_first, decrypt_body, encrypt_message, hashed_chain, parse_plain, Engine, Error, Event, IkeSaId,
    PeerMisbehaved,
};
use crate::crypto::ct_eq;
use crate::msgs::{
    emit_chain, parse_chain, DeletePayload, ExchangeType, Header, NotifyPayload, NotifyType, Payload,
    ProtocolId, DOI_IPSEC,
};
use std::time::Instant;

impl Engine {
    /// Sends HDR*, HASH(1), payloads with a fresh message id.
    fn send_informational(&mut self, idx: usize, payloads: Vec<Payload>) {
        let mid = self.new_message_id(idx);
        let Some(sa) = self.sas.get(idx) else {
            return;
        };
        let Some(keys) = sa.keys() else {
            return;
        };
        let (_, rest) = emit_chain(&payloads);
        let hash = keys.hash1(mid, &rest);
        let mut iv = keys.phase2_iv(&sa.p1_iv, mid);
        if let Ok(bytes) = encrypt_message(
            keys,
            &mut iv,
            Self::header(sa, ExchangeType::INFORMATIONAL, mid, 0),
            &hashed_chain(hash.to_vec(), &payloads),
        ) {
            self.send_once(idx, bytes);
        }
    }

    pub(super) fn send_protected_notify(&mut self, idx: usize, n: NotifyType, data: Vec<u8>) {
        let Some(sa) = self.sas.get(idx) else {
            return;
        };
        let p = Payload::Notify(NotifyPayload {
            doi: DOI_IPSEC,
            protocol: ProtocolId::ISAKMP,
            notify_type: n,
            spi: [sa.cky_i, sa.cky_r].concat(),
            data,
        });
        self.send_informational(idx, vec![p]);
    }

    /// RFC 3706 §5.3: sends R-U-THERE and waits for the ACK.
    pub(super) fn start_dpd(&mut self, now: Instant, id: IkeSaId) {
        let (initial, tries) = (self.config.retransmit_initial, self.config.retransmit_tries);
        if let Some(sa) = self.sas.iter_mut().find(|s| s.id == id && s.keys().is_some()) {
            if sa.dpd.is_some() {
                return;
            }
            sa.dpd = Some(super::Dpd {
                sequence: 0,
                deadline: now + initial,
                interval: initial,
                tries_left: tries,
            });
        } else {
            return;
        }
        self.send_dpd_probe(id);
    }

    /// One R-U-THERE with the next sequence number (RFC 3706 §7).
    pub(super) fn send_dpd_probe(&mut self, id: IkeSaId) {
        let Some(idx) = self.sas.position(id) else {
            return;
        };
        let Some(sa) = self.sas.get_mut(idx) else {
            return;
        };
        sa.dpd_sequence = sa.dpd_sequence.wrapping_add(1);
        let seq = sa.dpd_sequence;
        if let Some(d) = sa.dpd.as_mut() {
            d.sequence = seq;
        }
        self.send_protected_notify(idx, NotifyType::R_U_THERE, seq.to_be_bytes().to_vec());
    }

    /// Deletes one child pair and tells the peer our inbound SPI is gone,
    /// over the IKE SA holding the pair (`id`, or the one that adopted it)
    /// and the peer's other established IKE SAs.
    /// An orphan goes without a Delete: no ISAKMP SA is left to protect one.
    pub(super) fn delete_child(&mut self, id: IkeSaId, inbound_spi: u32) {
        let holds = |s: &super::IkeSa| s.children.iter().any(|(i, _)| *i == inbound_spi);
        let idx =
            self.sas.iter().position(|s| s.id == id && holds(s)).or_else(|| self.sas.iter().position(holds));
        let Some(idx) = idx else {
            if let Some(pos) = self.orphans.iter().position(|o| o.inbound == inbound_spi) {
                let o = self.orphans.remove(pos);
                self.events.push_back(Event::DeleteSa { spi: o.inbound, inbound: true, pair: o.inbound });
                self.events.push_back(Event::DeleteSa { spi: o.outbound, inbound: false, pair: o.inbound });
            }
            return;
        };
        let Some(sa) = self.sas.get_mut(idx) else {
            return;
        };
        let Some(pos) = sa.children.iter().position(|(i, _)| *i == inbound_spi) else {
            return;
        };
        let (i, o) = sa.children.remove(pos);
        let remote = sa.remote.ip();
        let delete = Payload::Delete(DeletePayload {
            doi: DOI_IPSEC,
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![i.to_be_bytes().to_vec()],
        });
        self.send_informational(idx, vec![delete.clone()]);
        // The peer may hold the pair under another of our ISAKMP SAs with it
        // (it adopts by its own rules, and strongSwan looks a Delete up in
        // the carrying ISAKMP SA only): the Delete goes over each of them;
        // one that does not hold the pair ignores it.
        let others: Vec<usize> = (0..self.sas.len())
            .filter(|&j| j != idx)
            .filter(|&j| self.sas.get(j).is_some_and(|s| s.remote.ip() == remote && s.keys().is_some()))
            .collect();
        for j in others {
            self.send_informational(j, vec![delete.clone()]);
        }
        self.events.push_back(Event::DeleteSa { spi: i, inbound: true, pair: i });
        self.events.push_back(Event::DeleteSa { spi: o, inbound: false, pair: i });
    }

    /// Deletes an IKE SA; tells the peer when asked. With `children` its
    /// child SAs go too (with their own Delete first); without, only the
    /// ISAKMP SA is deleted (RFC 2408 §3.15: a Delete names exactly the SAs
    /// to delete) and its children become orphans of the peer.
    pub(super) fn delete_ike_sa(&mut self, id: IkeSaId, notify_peer: bool, children: bool) {
        let Some(idx) = self.sas.position(id) else {
            return;
        };
        if notify_peer {
            // One Delete per Informational: strongSwan (as other IKEv1
            // implementations) acts on the first Delete payload of a message
            // only, so the children's and the ISAKMP SA's go separately.
            if let Some(sa) = self.sas.get(idx) {
                let esp = (children && !sa.children.is_empty()).then(|| {
                    Payload::Delete(DeletePayload {
                        doi: DOI_IPSEC,
                        protocol: ProtocolId::ESP,
                        spi_size: 4,
                        spis: sa.children.iter().map(|(i, _)| i.to_be_bytes().to_vec()).collect(),
                    })
                });
                let isakmp = Payload::Delete(DeletePayload {
                    doi: DOI_IPSEC,
                    protocol: ProtocolId::ISAKMP,
                    spi_size: 16,
                    spis: vec![[sa.cky_i, sa.cky_r].concat()],
                });
                if let Some(c) = esp {
                    self.send_informational(idx, vec![c]);
                }
                self.send_informational(idx, vec![isakmp]);
            }
        }
        let sa = self.sas.remove(idx);
        for q in &sa.quick {
            self.abandon_quick(q);
        }
        let remote = sa.remote.ip();
        for (i, o) in sa.children {
            if children {
                self.events.push_back(Event::DeleteSa { spi: i, inbound: true, pair: i });
                self.events.push_back(Event::DeleteSa { spi: o, inbound: false, pair: i });
            } else {
                self.orphans.push(super::Orphan { remote, inbound: i, outbound: o });
            }
        }
        self.events.push_back(Event::IkeSaDeleted(id));
    }

    /// Removes the pair with SPI `spi` (either direction) from the IKE SA at
    /// `idx`, else from another IKE SA with the same peer, else from that
    /// peer's orphans: the two ends may have adopted a pair into different
    /// ISAKMP SAs (both re-established at once), and the Delete is
    /// authenticated by the peer either way.
    fn take_child_of_peer(&mut self, idx: usize, remote: std::net::IpAddr, spi: u32) -> Option<(u32, u32)> {
        let matches = |(i, o): &(u32, u32)| *o == spi || *i == spi;
        let order = core::iter::once(idx).chain((0..self.sas.len()).filter(|&j| j != idx));
        for j in order.collect::<Vec<_>>() {
            let Some(sa) = self.sas.get_mut(j) else {
                continue;
            };
            if sa.remote.ip() != remote {
                continue;
            }
            if let Some(pos) = sa.children.iter().position(matches) {
                return Some(sa.children.remove(pos));
            }
        }
        let pos =
            self.orphans.iter().position(|o| o.remote == remote && matches(&(o.inbound, o.outbound)))?;
        let o = self.orphans.remove(pos);
        Some((o.inbound, o.outbound))
    }

    /// Any error returned before the HASH verified means the message is
    /// discarded (see `handle_datagram`): nothing here changes state before.
    pub(super) fn informational_datagram(
        &mut self,
        mut idx: usize,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), Error> {
        let sa = self.sas.get(idx).ok_or(Error::Local("sa"))?;
        let id = sa.id;
        let Some(keys) = sa.keys().cloned() else {
            // Phase 1 not done: the Informational is unprotected, so anyone
            // who knows the cookies can send it. An error Notify in it ends
            // nothing: it is kept as the reason to report if the exchange
            // times out, and the exchange goes on.
            let notified = parse_plain(header, datagram).ok().and_then(|raws| {
                raws.iter().find_map(|r| match &r.payload {
                    Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
                    _ => None,
                })
            });
            return match notified {
                Some(t) => Err(Error::PeerNotified(t)),
                None => {
                    self.rx_discard = Some(super::Discard::UnauthenticatedNotify);
                    Ok(())
                }
            };
        };
        if !header.is_encrypted() {
            // RFC 2409 §5.7: after phase 1, Informational is protected.
            return Err(Error::PeerMisbehaved(PeerMisbehaved::Unencrypted));
        }
        if sa.seen_ids.contains(header.message_id) {
            self.rx_discard = Some(super::Discard::Replay);
            return Ok(());
        }
        let iv = keys.phase2_iv(&sa.p1_iv, header.message_id);
        let (plain, _) = decrypt_body(&keys, &iv, datagram)?;
        // Garbage after decryption: the wrong key or tampering.
        let raws = parse_chain(header.next_payload, &plain, true)?;
        let Some(Payload::Hash(h)) = raws.first().map(|r| &r.payload) else {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::MissingPayload));
        };
        if !ct_eq(&keys.hash1(header.message_id, &after_first(&raws)), h) {
            // Unauthenticated: discarded, not answered.
            return Err(Error::AuthenticationFailed);
        }
        self.rx_authenticated = true;
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.seen_ids.insert(header.message_id);
        }
        let payloads: Vec<Payload> = raws.into_iter().skip(1).map(|r| r.payload).collect();
        for p in payloads {
            match p {
                Payload::Notify(n) => match n.notify_type {
                    NotifyType::R_U_THERE => {
                        self.send_protected_notify(idx, NotifyType::R_U_THERE_ACK, n.data);
                    }
                    NotifyType::R_U_THERE_ACK => {
                        let seq = <[u8; 4]>::try_from(n.data.as_slice()).map(u32::from_be_bytes).unwrap_or(0);
                        // RFC 3706 §7: only the ACK of the outstanding probe counts.
                        if let Some(sa) = self.sas.get_mut(idx) {
                            if sa.dpd.as_ref().is_some_and(|d| d.sequence == seq) {
                                sa.dpd = None;
                            }
                        }
                        self.events.push_back(Event::DeadPeerDetectionAck { ike_sa: id, sequence: seq });
                    }
                    NotifyType::INITIAL_CONTACT => {
                        self.events.push_back(Event::InitialContact(id));
                    }
                    t if t.is_error() => {
                        // The peer refused our pending Quick Mode: stop
                        // retransmitting it and free its SPI.
                        if let Some(sa) = self.sas.get_mut(idx) {
                            let (gone, keep): (Vec<_>, Vec<_>) =
                                sa.quick.drain(..).partition(|q| q.is_initiator_pending());
                            sa.quick = keep;
                            for q in gone {
                                if let Some(spi) = q.allocated_spi() {
                                    self.spis.release(spi);
                                }
                            }
                        }
                        self.events.push_back(Event::Failed { ike_sa: id, error: Error::PeerNotified(t) });
                    }
                    _ => {}
                },
                Payload::Delete(d) if d.protocol == ProtocolId::ISAKMP => {
                    // RFC 2408 §3.15: the ISAKMP SA named (by its cookies, one
                    // of this peer's; the carrying one if none matches) and
                    // nothing else: its IPsec SAs stay, as orphans until a
                    // newer ISAKMP SA adopts them.
                    let remote = self.sas.get(idx).map(|s| s.remote.ip());
                    let named = d.spis.iter().find_map(|c| {
                        self.sas
                            .iter()
                            .find(|s| Some(s.remote.ip()) == remote && [s.cky_i, s.cky_r].concat() == *c)
                            .map(|s| s.id)
                    });
                    let target = named.unwrap_or(id);
                    self.delete_ike_sa(target, false, false);
                    // Positions move when an SA goes: find ours again.
                    match self.sas.position(id) {
                        Some(i) if target != id => idx = i,
                        _ => return Ok(()),
                    }
                }
                Payload::Delete(d) if d.protocol == ProtocolId::ESP => {
                    let Some(remote) = self.sas.get(idx).map(|s| s.remote.ip()) else {
                        return Ok(());
                    };
                    for spi in d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                            continue;
                        };
                        // RFC 2408 §3.15: the sender names its inbound SPI, our
                        // outbound; some peers name ours, so either is taken.
                        let spi = u32::from_be_bytes(b);
                        if let Some((i, o)) = self.take_child_of_peer(idx, remote, spi) {
                            self.events.push_back(Event::DeleteSa { spi: o, inbound: false, pair: i });
                            self.events.push_back(Event::DeleteSa { spi: i, inbound: true, pair: i });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
