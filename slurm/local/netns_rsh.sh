#!/usr/bin/env bash
# Open MPI's remote launch agent for simulated nodes (mpirun --mca plm_rsh_agent THIS):
# called like ssh, as `netns_rsh.sh HOST COMMAND...`; runs COMMAND inside the network
# namespace that owns address HOST (made by netns_nodes.sh), under its own host name
# (nodeK), as ssh would on a real node.
set -euo pipefail
host=$1
shift
for ns in $(ip netns list | awk '{print $1}'); do
  if ip -n "$ns" -o -4 addr show 2>/dev/null | grep -q " inet $host/"; then
    node=${ns##*-}
    # ssh hands the remote shell one command line: the words joined by spaces.
    exec ip netns exec "$ns" unshare --uts sh -c "hostname $node; $*"
  fi
done
echo "netns_rsh: no namespace has address $host" >&2
exit 255
