#!/usr/bin/env bash
# Interleaved A/B runs of two hookline binaries with one bench binary: each round runs every
# scenario on A, then on B, so a slow spell of the machine hits both alike.
#   scripts/bench-ab.sh OLD_HOOKLINE NEW_HOOKLINE [BENCH]      # N rounds (default 3)
#   SCENARIOS="e1 e10" scripts/bench-ab.sh …                   # a subset
# PG_URL (default postgres://postgres@127.0.0.1:5432/test) is the database for the postgres row.
set -euo pipefail
a=$1 b=$2
bench=${3:-${CARGO_TARGET_DIR:-target}/release/hookline-bench}
rounds=${N:-3}
pg_url="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
scenarios=${SCENARIOS:-"e1 e10 batch rate500 postgres"}

args() {
  case $1 in
    e1) echo "--events 20000" ;;
    e10) echo "--events 5000 --endpoints 10" ;;
    batch) echo "--events 100000 --batch 100" ;;
    rate500) echo "--rate 500 --events 5000" ;;
    postgres) echo "--events 20000 --database-url $pg_url" ;;
    backlog200k) echo "--backlog --events 200000 --batch 100" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

summary() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
lat = r.get("latency") or {}
drain = r.get("drain_rate")
print(sys.argv[1], sys.argv[2],
      "rate=%.0f/s" % r["delivery_rate"],
      "drain=%s" % ("%.0f/s" % drain if drain else "-"),
      "p50=%sms p99=%sms" % (lat.get("p50_ms"), lat.get("p99_ms")),
      "rss_idle/peak=%.1f/%.1fMiB" % (r["server_idle_rss_mb"], r["server_peak_rss_mb"]),
      "cpu/delivery=%.3fms" % r["server_cpu_ms_per_delivery"],
      "all/delivery=%.3fms" % r["total_cpu_ms_per_delivery"],
      "complete=%s duplicates=%s" % (r["complete"], r["duplicates"]))
' "$@"
}

for ((round = 1; round <= rounds; round++)); do
  for s in $scenarios; do
    for side in A B; do
      bin=$a; [ $side = B ] && bin=$b
      # shellcheck disable=SC2046
      "$bench" --json --hookline "$bin" $(args "$s") | summary "$s" "$side"
    done
  done
done
