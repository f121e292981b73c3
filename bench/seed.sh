#!/bin/sh
# Baseline (b) of `make bench`: the seed's commands as a plain shell script, run on one node
# (the floor of iproute2 itself: no Ansible, no reads, no checks). Rerunnable with the same
# idioms as bench/naive.yml: guards on `add`s, `replace` for addresses and routes.
#
#   nsenter --net=/run/netns/NODE env MODE=vxlan NODE_IP=10.58.1.10 IFACE=eth0 TUNNEL_IP=10.244.1.1 \
#       PODS='pod1,10.244.1.10,veth-p1 ...' PEERS='10.58.1.11,10.244.2.0/24,10.244.2.1 ...' sh bench/seed.sh
#
# (In the lab, nsenter --net rather than `ip netns exec NODE`: the latter's private mount namespace
# would take the pods' namespaces with it when the script ends. Under nsenter --net, /sys shows the
# root namespace, so devices are looked up with `ip link show`.)
set -e
has() { ip link show dev "$1" >/dev/null 2>&1; }
: "${MODE:?}" "${NODE_IP:?}" "${TUNNEL_IP:?}" "${IFACE:=eth0}" "${POD_NET:=10.244.0.0/16}"

for pod in $PODS; do
    IFS=, read -r name ip veth <<EOF
$pod
EOF
    [ -e "/run/netns/$name" ] || ip netns add "$name"
    has "$veth" || ip link add "c-$veth" type veth peer name "$veth"
    if has "c-$veth"; then ip link set "c-$veth" netns "$name" name eth0; fi
    ip netns exec "$name" ip addr replace "$ip/24" dev eth0
    ip netns exec "$name" ip link set eth0 up
    ip netns exec "$name" ip route replace default via 169.254.10.24 dev eth0 onlink
    ip link set "$veth" up
    echo 1 > "/proc/sys/net/ipv4/conf/$veth/proxy_arp"
    ip route replace "$ip" dev "$veth" scope link
done
echo 1 > /proc/sys/net/ipv4/ip_forward
iptables -C FORWARD -s "$POD_NET" -d "$POD_NET" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD -s "$POD_NET" -d "$POD_NET" -j ACCEPT

case $MODE in
host-gw)
    for peer in $PEERS; do
        IFS=, read -r peer_ip peer_cidr peer_tun <<EOF
$peer
EOF
        ip route replace "$peer_cidr" via "$peer_ip" dev "$IFACE" onlink
    done ;;
ipip)
    has mustang.tun0 || ip tunnel add mustang.tun0 mode ipip local "$NODE_IP" ttl 64
    ip link set mustang.tun0 mtu 1480
    ip link set mustang.tun0 up
    for peer in $PEERS; do
        IFS=, read -r peer_ip peer_cidr peer_tun <<EOF
$peer
EOF
        ip route replace "$peer_cidr" via "$peer_ip" dev mustang.tun0 onlink
    done
    ip addr replace "$TUNNEL_IP/32" dev mustang.tun0 ;;
vxlan)
    has vxlan0 ||
        ip link add vxlan0 type vxlan id 100 dstport 4789 local "$NODE_IP" dev "$IFACE" learning
    ip addr replace "$TUNNEL_IP/32" dev vxlan0
    ip link set vxlan0 up
    for peer in $PEERS; do
        IFS=, read -r peer_ip peer_cidr peer_tun <<EOF
$peer
EOF
        ip route replace "$peer_cidr" via "$peer_tun" dev vxlan0 onlink
        bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst "$peer_ip" self permanent
    done ;;
*) echo "seed.sh: unknown MODE $MODE" >&2; exit 2 ;;
esac
