# Sourced by the network benches (inject-latency, many-peers): checks and installs what they need, and
# builds their world with scripts/sandbox (the demo's), removed on exit, also on failure and Ctrl-C:
#   SANDBOX_NETNS (198.18.0.1, veth-host) --veth-- SANDBOX_PEERS_NETNS (198.18.0.2, veth-peers)
#   a faultlined in the root namespace on a private socket, acting in the host namespace by its path
# Nothing is added to the root namespace's interfaces, qdiscs, filters or firewall: faults and the
# baselines' commands act in the host namespace only (scripts run there with `ip netns exec`).
#
#   bench_setup NAME [BUILD_DIR]   sets repo, build, out, work, host_ns, peer_ns, interface, agent_address

bench_die() {
  echo "$bench_name: $*" >&2
  exit 1
}

bench_cleanup() {
  # scripts/sandbox down reverts what the agent holds, stops it and deletes the namespaces, and with
  # them the veth pair and every qdisc, filter, BPF attachment, iptables rule and ipset in them.
  if [[ -n ${work:-} ]]; then
    [[ -f $work/sbx/env ]] && FAULTLINE_BUILD_DIR=$build "$repo/scripts/sandbox" down "$work/sbx" >/dev/null
    rm -rf "$work"
  fi
}

bench_setup() {
  bench_name=$1
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  build=${2:-${FAULTLINE_BUILD_DIR:-$repo/build}}
  build=$(cd "$build" 2>/dev/null && pwd) || bench_die "no build directory $2: run scripts/build"
  out=${BENCH_OUT:-$build/bench}
  [[ $(id -u) -eq 0 ]] || bench_die "needs root (namespaces, tc, iptables; the agent runs as root)"
  [[ -x $build/daemon/faultlined ]] || bench_die "no faultlined in $build: run scripts/build"

  # The baselines' tools, installed once (apt-get does nothing for what is there).
  local wanted=() tool
  for tool in ip:iproute2 tc:iproute2 iptables:iptables ipset:ipset; do
    command -v "${tool%%:*}" >/dev/null || wanted+=("${tool#*:}")
  done
  if ((${#wanted[@]} > 0)); then
    echo "$bench_name: installing ${wanted[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null ||
      bench_die "cannot install ${wanted[*]}"
  fi
  mkdir -p "$out"

  work=$(mktemp -d /tmp/faultline-bench.XXXXXX)
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  FAULTLINE_BUILD_DIR=$build "$repo/scripts/sandbox" up "$work/sbx" >/dev/null || bench_die "no sandbox"
  # shellcheck disable=SC1091
  source "$work/sbx/env"
  host_ns=$SANDBOX_NETNS
  peer_ns=$SANDBOX_PEERS_NETNS
  interface=veth-host
  agent_address=$FAULTLINE_AGENT
  # Resolve the neighbour now: the first packets of a measurement must not wait for ARP.
  ip netns exec "$host_ns" ping -c 1 -W 5 198.18.0.2 >/dev/null || bench_die "the namespaces do not connect"
}
