# Sourced by the network benches (inject-latency, many-peers): checks and installs what they need, and
# builds their world, which is removed on exit, also on failure and Ctrl-C:
#   flb-PID-h (198.18.0.1, flb-host) --veth-- flb-PID-p (198.18.0.2, flb-peer)
#   a faultlined in the root namespace on a private socket, acting in flb-PID-h by its path
# Nothing is added to the root namespace's interfaces, qdiscs, filters or firewall: faults and the
# baselines' commands act in flb-PID-h only (scripts run there with `ip netns exec`).
#
#   bench_setup NAME [BUILD_DIR]   sets repo, build, out, work, host_ns, peer_ns, agent_address

bench_die() {
  echo "$bench_name: $*" >&2
  exit 1
}

bench_cleanup() {
  # The agent first: on SIGTERM it reverts what it holds. Then the namespaces, and with them the veth
  # pair and every qdisc, filter, BPF attachment, iptables rule and ipset in them.
  if [[ -n ${bench_agent:-} ]]; then
    kill "$bench_agent" 2>/dev/null || true
    wait "$bench_agent" 2>/dev/null || true
  fi
  for ns in ${host_ns:-} ${peer_ns:-}; do
    ip netns del "$ns" 2>/dev/null || true
  done
  [[ -n ${work:-} ]] && rm -rf "$work"
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
  host_ns=flb-$$-h
  peer_ns=flb-$$-p
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  ip netns add "$host_ns"
  ip netns add "$peer_ns"
  ip -n "$host_ns" link add flb-host type veth peer name flb-peer netns "$peer_ns"
  ip -n "$host_ns" addr add 198.18.0.1/24 dev flb-host
  ip -n "$peer_ns" addr add 198.18.0.2/24 dev flb-peer
  for ns in "$host_ns" "$peer_ns"; do ip -n "$ns" link set lo up; done
  ip -n "$host_ns" link set flb-host up
  ip -n "$peer_ns" link set flb-peer up
  # Resolve the neighbour now: the first packets of a measurement must not wait for ARP.
  ip netns exec "$host_ns" ping -c 1 -W 5 198.18.0.2 >/dev/null || bench_die "the namespaces do not connect"

  "$build/daemon/faultlined" --socket "$work/agent.sock" --state-dir "$work/state" 2>"$work/agent.log" &
  bench_agent=$!
  agent_address=unix:$work/agent.sock
  for _ in $(seq 100); do [[ -S $work/agent.sock ]] && break; sleep 0.05; done
  [[ -S $work/agent.sock ]] || bench_die "the agent did not start: $(cat "$work/agent.log")"
}
