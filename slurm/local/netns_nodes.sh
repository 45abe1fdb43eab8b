#!/usr/bin/env bash
# Simulated nodes on one machine: a network namespace per node, joined by a bridge, so
# multi-node mpirun runs (and link cuts) can be tested without a cluster
# (docs/CLUSTER_TESTING.md). Needs root and iproute2.
#
#   slurm/local/netns_nodes.sh up NAME N     namespaces NAME-node0..N-1 at 10.213.X.1..N
#                                           on bridge NAME-br; prints one address per line
#   slurm/local/netns_nodes.sh cut NAME K    takes node K's link down (a dead node)
#   slurm/local/netns_nodes.sh down NAME     kills every process left in the namespaces,
#                                           removes them, their links and the bridge
#
# NAME (at most 8 characters) keeps several test runs apart; the subnet is derived from it.
set -euo pipefail

usage() { echo "usage: $0 up NAME N | cut NAME K | down NAME" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
name=$2
[ ${#name} -le 8 ] || { echo "netns_nodes: NAME '$name' is longer than 8 characters" >&2; exit 2; }
# One /24 per NAME, from a range kept for these tests (10.213.0.0/16).
octet=$(( $(printf '%s' "$name" | cksum | cut -d' ' -f1) % 250 + 1 ))
subnet=10.213.$octet
bridge=$name-br

case $action in
  up)
    [ $# -eq 3 ] || usage
    n=$3
    ip link add "$bridge" type bridge
    ip link set "$bridge" up
    for k in $(seq 0 $((n - 1))); do
      ns=$name-node$k
      ip netns add "$ns"
      ip link add "$name-v$k" type veth peer name eth0 netns "$ns"
      ip link set "$name-v$k" master "$bridge" up
      ip -n "$ns" addr add "$subnet.$((k + 1))/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" link set lo up
      echo "$subnet.$((k + 1))"
    done
    ;;
  cut)
    [ $# -eq 3 ] || usage
    ip link set "$name-v$3" down
    ;;
  down)
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-node[0-9]+$" || true); do
      pids=$(ip netns pids "$ns" || true)
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
      ip netns del "$ns" || true
    done
    for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$name-v[0-9]+$" || true); do
      ip link del "$link" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    ;;
  *) usage ;;
esac
