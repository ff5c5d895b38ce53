#!/bin/sh
# A two-host data-parallel job on one machine: two network namespaces joined by a veth pair, each
# with its own hostname, and Open MPI's remote launcher pointed at `ip netns exec` instead of ssh,
# so the ranks meet over TCP as on two machines (README.md, Several devices and machines).
# Needs root (ip netns, unshare --uts). Usage, from the project root after a build:
#   scripts/two-host-netns.sh [datamux train arguments...]
# Default arguments: the quickstart at the micro model for 10 steps, into /tmp/datamux-two-host.
set -eu
[ "$(id -u)" -eq 0 ] || { echo "two-host-netns: needs root (ip netns, unshare)" >&2; exit 2; }
bin=$(pwd)/build/datamux
[ -x "$bin" ] || { echo "two-host-netns: $bin is missing: build first (make build)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "two-host-netns: mpirun is missing: scripts/install-deps.sh" >&2; exit 2; }
if [ $# -eq 0 ]; then
  set -- experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set model_path= \
    --max_steps 10 --batch_size 4 --set task.max_length=16 --set task.max_train_examples=400 \
    --set task.max_eval_examples=64 --set training.eval_interval=5 --set training.time_budget_seconds=0 \
    --output_dir /tmp/datamux-two-host
fi
work=$(mktemp -d)
cleanup() {
  ip netns del dmx2h_a 2>/dev/null || true
  ip netns del dmx2h_b 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add dmx2h_a
ip netns add dmx2h_b
ip link add dmx2h_va type veth peer name dmx2h_vb
ip link set dmx2h_va netns dmx2h_a
ip link set dmx2h_vb netns dmx2h_b
ip netns exec dmx2h_a ip addr add 10.77.0.1/24 dev dmx2h_va
ip netns exec dmx2h_b ip addr add 10.77.0.2/24 dev dmx2h_vb
for n in dmx2h_a dmx2h_b; do ip netns exec $n ip link set lo up; done
ip netns exec dmx2h_a ip link set dmx2h_va up
ip netns exec dmx2h_b ip link set dmx2h_vb up
# Open MPI calls the agent as `AGENT [options] HOST COMMAND...`, as it would call ssh
cat > "$work/netns-rsh" <<'AGENT'
#!/bin/sh
while [ "${1#-}" != "$1" ]; do shift; done
host=$1; shift
case $host in
  10.77.0.1) ns=dmx2h_a name=host-a ;;
  10.77.0.2) ns=dmx2h_b name=host-b ;;
  *) echo "netns-rsh: unknown host $host" >&2; exit 255 ;;
esac
exec ip netns exec $ns unshare --uts sh -c "hostname $name; $*"
AGENT
chmod +x "$work/netns-rsh"
# each "host" has one rank on the shared CPU: one PoCL thread each; TCP only, over the veth pair
quoted=""
for a in "$@"; do quoted="$quoted '$(printf %s "$a" | sed "s/'/'\\\\''/g")'"; done
ip netns exec dmx2h_a unshare --uts sh -c "hostname host-a; exec mpirun --allow-run-as-root --oversubscribe -np 2 \
  -H 10.77.0.1:1,10.77.0.2:1 --mca plm_rsh_agent $work/netns-rsh --mca btl tcp,self \
  --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
  -x DATAMUX_DATA=${DATAMUX_DATA:-$(pwd)/../shared/data} -x POCL_MAX_PTHREAD_COUNT=1 -x PATH \
  $bin train $quoted"
