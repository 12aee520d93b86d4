# Network-namespace topology for end-to-end tests, sourced by scripts and tests.
#
#   host-a ── veth ── gw-a [espd: inside | outside] ── wire (veth) ── [outside | inside] gw-b ── veth ── host-b
#
# Addresses (198.18.0.0/15 and 2001:db8::/32 only, no default route out):
#   site A 198.18.1.0/24, 2001:db8:1::/64   host-a .10 / ::10, gw-a inside .1 / ::1
#   wire   198.18.0.0/24, 2001:db8::/64     gw-a .1 / ::1, gw-b .2 / ::2
#   site B 198.19.1.0/24, 2001:db8:2::/64   host-b .10 / ::10, gw-b inside .1 / ::1
# The gateways' interfaces carry no kernel addresses: espd owns them through net_af_packet.
# Every name carries $NS_TAG so parallel runs do not collide.

NS_TAG=${NS_TAG:-e2e}
NS_HA="${NS_TAG}-host-a"
NS_GA="${NS_TAG}-gw-a"
NS_GB="${NS_TAG}-gw-b"
NS_HB="${NS_TAG}-host-b"

ns_quiet_iface() {
    # An interface espd owns through net_af_packet: up, no kernel IPv6 (no RS/DAD noise), no
    # offloads that would hand af_packet frames with unfinished checksums or beyond the MTU,
    # and its received frames dropped at the netdev ingress hook (nftables; this kernel has
    # no tc classifiers). Packet taps (af_packet) run before that
    # hook, so espd still sees every frame, but the kernel's own stack does not: otherwise
    # Linux, which accepts packets for any local address on any interface, would answer
    # pings and receive IKE once directly and once more through espd's TAP. With a NIC
    # bound to DPDK the kernel never sees the frames at all.
    local ns=$1 ifc=$2
    ip -n "$ns" link set "$ifc" up
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=1"
    ip netns exec "$ns" ethtool -K "$ifc" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    ip netns exec "$ns" nft add table netdev espd-owned
    ip netns exec "$ns" nft add chain netdev espd-owned "in-$ifc" \
        "{ type filter hook ingress device $ifc priority 0; policy drop; }"
}

ns_up() {
    ns_down 2>/dev/null || true
    for ns in "$NS_HA" "$NS_GA" "$NS_GB" "$NS_HB"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip link add ha0 netns "$NS_HA" type veth peer name in0 netns "$NS_GA"
    ip link add out0 netns "$NS_GA" type veth peer name out0 netns "$NS_GB"
    ip link add hb0 netns "$NS_HB" type veth peer name in0 netns "$NS_GB"
    for ns in "$NS_GA" "$NS_GB"; do
        ns_quiet_iface "$ns" in0
        ns_quiet_iface "$ns" out0
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
    done
    ip -n "$NS_HA" link set ha0 address 02:00:00:00:0a:10
    ip -n "$NS_HB" link set hb0 address 02:00:00:00:0b:10
    ip -n "$NS_HA" addr add 198.18.1.10/24 dev ha0
    ip -n "$NS_HA" addr add 2001:db8:1::10/64 dev ha0 nodad
    ip -n "$NS_HA" link set ha0 up
    # Hosts compute their own checksums: a veth would otherwise hand af_packet frames with
    # checksums left for an offload engine that is not there.
    ip netns exec "$NS_HA" ethtool -K ha0 tx off >/dev/null 2>&1 || true
    ip -n "$NS_HB" addr add 198.19.1.10/24 dev hb0
    ip -n "$NS_HB" addr add 2001:db8:2::10/64 dev hb0 nodad
    ip -n "$NS_HB" link set hb0 up
    ip netns exec "$NS_HB" ethtool -K hb0 tx off >/dev/null 2>&1 || true
    ip -n "$NS_HA" route add 198.19.1.0/24 via 198.18.1.1
    ip -n "$NS_HA" -6 route add 2001:db8:2::/64 via 2001:db8:1::1
    ip -n "$NS_HB" route add 198.18.1.0/24 via 198.19.1.1
    ip -n "$NS_HB" -6 route add 2001:db8:1::/64 via 2001:db8:2::1
}

ns_down() {
    local ns
    for ns in "$NS_HA" "$NS_GA" "$NS_GB" "$NS_HB"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
