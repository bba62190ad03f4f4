#!/usr/bin/env bash
# Runs every scenario of README's Performance table and prints one summary line per run.
#   scripts/bench-all.sh                       # all scenarios, 3 runs each (backlogs once)
#   N=1 scripts/bench-all.sh e1 --events 20000 # one named scenario with its own flags
# PG_URL (default postgres://postgres@127.0.0.1:5432/test) is the database for the PostgreSQL row.
# Builds the release binaries first; run it on an otherwise idle machine. `--baseline` rows also
# measure the direct-post ceiling (publisher straight to receiver) and print hookline's rate as a
# ratio of it: machines of one kind differ by 3x, ratios in one run do not.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p hookline -p hookline-bench
bench="$target/release/hookline-bench"
runs="${N:-3}"
pg_url="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"

run() {
  local name=$1 i
  shift
  for ((i = 1; i <= runs; i++)); do
    "$bench" --json "$@" | python3 -c '
import json, sys
r = json.load(sys.stdin)
lat = r.get("latency") or {}
drain = r.get("drain_rate")
print(sys.argv[1],
      "rate=%.0f/s" % r["delivery_rate"],
      "ratio=%s" % ("%.3f" % r["delivery_ratio"] if r.get("delivery_ratio") else "-"),
      "drain=%s" % ("%.0f/s" % drain if drain else "-"),
      "publish=%.0f/s" % r["publish_rate"],
      "p50=%sms p99=%sms" % (lat.get("p50_ms"), lat.get("p99_ms")),
      "rss_idle/peak/after=%.1f/%.1f/%sMiB" % (r["server_idle_rss_mb"], r["server_peak_rss_mb"],
          "%.1f" % r["server_rss_after_mb"] if r.get("server_rss_after_mb") else "-"),
      "cpu/delivery=%.3fms" % r["server_cpu_ms_per_delivery"],
      "all/delivery=%.3fms" % r["total_cpu_ms_per_delivery"],
      "store=%s" % r.get("store_bytes"),
      "complete=%s duplicates=%s" % (r["complete"], r["duplicates"]))
' "$name"
  done
}

if [ $# -gt 0 ]; then
  run "$@"
  exit
fi
run e1 --events 20000 --baseline
run e10 --events 5000 --endpoints 10 --baseline --rss-after 60
run batch --events 100000 --batch 100 --baseline
run rate500 --rate 500 --events 5000
run postgres --events 20000 --database-url "$pg_url" --baseline
runs=1 run backlog200k --backlog --events 200000 --batch 100
runs=1 run backlog1m --backlog --events 1000000 --batch 100
