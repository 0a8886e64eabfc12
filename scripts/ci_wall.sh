#!/usr/bin/env bash
# Wall time of `.ci/run` on fresh clones of this checkout's HEAD, with the load it ran under.
#
#   scripts/ci_wall.sh LABEL RUNS [HOGS]
#
# Each run clones HEAD into a temporary directory, times `.ci/run` there from start to exit and
# samples the 1-minute load average every 5 s; HOGS busy-looping processes (default 0) run beside
# it to measure under load. One line per run goes to stdout and to /tmp/ci-wall-LABEL.txt; each
# run's log stays in /tmp/ci-wall-LABEL-N.log. (Issue 21: ≤ 180 s quiet, ≤ 300 s at load 3.)
set -uo pipefail
label=${1:?label}; runs=${2:?runs}; hogs=${3:-0}
root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
out=/tmp/ci-wall-$label.txt; : > "$out"
for i in $(seq 1 "$runs"); do
  clone=$(mktemp -d /tmp/ci-wall-XXXX); git clone -q "$root" "$clone"
  pids=()
  for _ in $(seq 1 "$hogs"); do python3 -c "while True: pass" & pids+=($!); done
  ( while true; do cut -d' ' -f1 /proc/loadavg; sleep 5; done ) > "$clone.load" & sampler=$!
  start=$(date +%s.%N)
  (cd "$clone" && bash .ci/run > "/tmp/ci-wall-$label-$i.log" 2>&1); status=$?
  end=$(date +%s.%N)
  kill "$sampler" "${pids[@]}" 2>/dev/null
  load=$(awk '{s+=$1; if(n==0||$1<lo)lo=$1; if($1>hi)hi=$1; n++} END {printf "load mean %.1f min %.1f max %.1f", s/n, lo, hi}' "$clone.load")
  result=$(grep -E "passed|failed" "/tmp/ci-wall-$label-$i.log" | tail -1)
  printf "%s run %d: exit %d, wall %.0f s; %s; %s; HEAD %s\n" "$label" "$i" "$status" \
    "$(echo "$end - $start" | bc)" "$load" "$result" "$(git -C "$root" rev-parse --short HEAD)" | tee -a "$out"
  rm -rf "$clone" "$clone.load"
done
