/*
 * Real symbols for DPDK's static inline functions and macros, so Rust can call them
 * without re-implementing DPDK's structures. Keep this list to what the gateway uses:
 * per-packet field access (data pointer, lengths) is done in Rust over the bindgen
 * structs so that it inlines; only logic with DPDK-internal invariants lives here.
 */
#ifndef ESPGW_DPDK_SHIM_H
#define ESPGW_DPDK_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

/* ethdev fast path */
uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf */
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
void shim_rte_pktmbuf_reset(struct rte_mbuf *m);
/* The reference count (rte_mbuf_refcnt_read) and whether the mbuf is indirect or carries an
 * external buffer: the checks the Rust side repeats inline before handing out &mut bytes. */
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
int shim_rte_mbuf_is_shared_buffer(const struct rte_mbuf *m);

/* ring */
unsigned shim_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                     unsigned n, unsigned *free_space);
unsigned shim_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
                                     unsigned n, unsigned *available);
unsigned shim_rte_ring_count(const struct rte_ring *r);

/* lcore, time, errors */
unsigned shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);
uint64_t shim_rte_get_tsc_hz(void);
int shim_rte_errno(void);
void shim_rte_pause(void);



/* Layout cross-check for the Rust side, which reads these fields directly:
 * out = { sizeof(struct rte_mbuf), offsetof buf_addr, data_off, pkt_len, data_len, buf_len,
 *         port, pool, next, refcnt, ol_flags }. */
void shim_rte_mbuf_layout(uint32_t out[11]);

/* RSS hash-type masks: built from RTE_BIT64(), a function-like macro bindgen cannot expand. */
uint64_t shim_rte_eth_rss_ip(void);
uint64_t shim_rte_eth_rss_udp(void);
uint64_t shim_rte_eth_rss_tcp(void);

#endif
