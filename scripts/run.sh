#!/bin/sh
# run.sh: kvmm's main job (`make run`): kvmm-sim's default scenario.
#
# A generated multi-turn chat workload (60 sessions, 4 shared system
# prompts, about 300 requests) for one GPU of Llama-3-70B served with
# tensor parallelism over 8 H100s, with a GPU KV budget of 1 GiB per GPU (a
# busy server's share) so that the cache policies matter, through kvmm's real
# cache, prefix cache and tiers on this machine's default backend (the GPU
# when there is one, else the host backend: real memfd pages, real disk
# I/O).  Every policy kvmm-sim knows is compared; the table is printed and
# the report and plot go to build/run/ (KVMM_RUN_DIR).  Extra arguments go
# to kvmm-sim (KVMM_RUN_ARGS, or after `--` here).
set -eu
cd "$(dirname "$0")/.."
out=${KVMM_RUN_DIR:-build/run}
bin=build/default/bin/kvmm-sim
[ -x "$bin" ] || { echo "run: $bin is not built (make all)" >&2; exit 1; }
mkdir -p "$out"
backend=host
if [ -e /dev/nvidiactl ] && ls /dev/nvidia[0-9]* >/dev/null 2>&1; then
	backend=cuda
fi
echo "kvmm-sim: default scenario on the $backend backend (docs/sim.md)"
# shellcheck disable=SC2086
exec "$bin" --workload chat:sessions=60,rate=1 --model llama3-70b-tp8 --machine h100 \
	--backend "$backend" --gpu-kv-bytes 1G --host-bytes 2G --disk-bytes 8G \
	--disk-dir "$out/disk" --policy all --report "$out/report.json" \
	${KVMM_RUN_ARGS:-} "$@"
