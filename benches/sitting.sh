#!/bin/bash
# One benchmark sitting: builds of `benches/mattermost_webhook.rs` alternated in
# rotating order, round after round, one `--only` scenario per run, one line each.
#
#   benches/sitting.sh ROUNDS BUILD... -- WHERE:SCENARIO...
#
# BUILD: a bench binary in $BENCH_BINS (default ./bench-bins), built e.g. with
#   cargo bench --no-default-features --features mattermost,jemalloc \
#     --bench mattermost_webhook --no-run
# WHERE: `disk` (state under $DISK_DIR, default /var/tmp), `shm` (state on
# /dev/shm; the disk probe still watches $DISK_DIR) or `slowN` (on disk, with
# tests/fixtures/sync_gate.c preloaded: every sync of the store N µs longer).
# SCENARIO: the arguments after `--only`, e.g. `closed 1 1 5000`, `latency 1 2000`.
set -u
bins=${BENCH_BINS:-./bench-bins}
disk=${DISK_DIR:-/var/tmp}
shim=$bins/libsync_gate.so
[ -e "$shim" ] || cc -O2 -shared -fPIC -o "$shim" "$(dirname "$0")/../tests/fixtures/sync_gate.c" -ldl || exit 1
rounds=$1; shift
builds=()
while [ "$1" != "--" ]; do builds+=("$1"); shift; done; shift
mkdir -p /dev/shm/switchboard-bench
for round in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    where=${spec%%:*}; scenario=${spec#*:}
    for i in "${!builds[@]}"; do
      build=${builds[$(( (i + round) % ${#builds[@]} ))]}
      state=$disk; preload=""; slow=""
      case $where in
        shm) state=/dev/shm/switchboard-bench ;;
        slow*) preload=$shim; slow=${where#slow} ;;
      esac
      sync
      # shellcheck disable=SC2086 # the scenario is several arguments
      out=$(LD_PRELOAD=$preload SLOW_DISK_SYNC_US=$slow TMPDIR=$state DISK_PROBE_DIR=$disk \
        timeout 300 "$bins/$build" --only $scenario 2>&1 | tail -1)
      echo "r$round $build $where $scenario | $out | load $(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
