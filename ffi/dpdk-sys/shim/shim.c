/* See shim.h. Each function forwards to the static inline or macro of the same name. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <stddef.h>
#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void shim_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m) { return rte_pktmbuf_is_contiguous(m); }
void shim_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
int shim_rte_mbuf_is_shared_buffer(const struct rte_mbuf *m)
{
    return RTE_MBUF_CLONED(m) || RTE_MBUF_HAS_EXTBUF(m);
}

unsigned shim_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                     unsigned n, unsigned *free_space)
{
    return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned shim_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
                                     unsigned n, unsigned *available)
{
    return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned shim_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

unsigned shim_rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t shim_rte_rdtsc(void) { return rte_rdtsc(); }
uint64_t shim_rte_get_tsc_hz(void) { return rte_get_tsc_hz(); }
int shim_rte_errno(void) { return rte_errno; }
void shim_rte_pause(void) { rte_pause(); }

void shim_rte_mbuf_layout(uint32_t out[11])
{
    out[0] = sizeof(struct rte_mbuf);
    out[1] = offsetof(struct rte_mbuf, buf_addr);
    out[2] = offsetof(struct rte_mbuf, data_off);
    out[3] = offsetof(struct rte_mbuf, pkt_len);
    out[4] = offsetof(struct rte_mbuf, data_len);
    out[5] = offsetof(struct rte_mbuf, buf_len);
    out[6] = offsetof(struct rte_mbuf, port);
    out[7] = offsetof(struct rte_mbuf, pool);
    out[8] = offsetof(struct rte_mbuf, next);
    out[9] = offsetof(struct rte_mbuf, refcnt);
    out[10] = offsetof(struct rte_mbuf, ol_flags);
}

uint64_t shim_rte_eth_rss_ip(void) { return RTE_ETH_RSS_IP; }
uint64_t shim_rte_eth_rss_udp(void) { return RTE_ETH_RSS_UDP; }
uint64_t shim_rte_eth_rss_tcp(void) { return RTE_ETH_RSS_TCP; }
