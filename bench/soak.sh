#!/usr/bin/env bash
# Memory soak (issue 14, finding 1): a release keymint under constant load on
# loopback, its resident memory (VmRSS of the server process, from
# /proc/<pid>/status) sampled every 10 s. Each mode starts a fresh server on
# a fresh SQLite database with 1 000 keys and runs for SOAK_MINUTES:
#
#   noscrape  token exchanges (wrk -t1 -c16, X-API-Key cycling over the keys),
#             nobody reads /metrics — the default deployment
#   scrape    the same, with GET /metrics every 5 s
#   random    requests with made-up methods and paths (bench/random.lua),
#             nobody reads /metrics
#
#   bench/soak.sh                          # noscrape then scrape, 10 min each
#   SOAK_MODES="random" SOAK_MINUTES=2 bench/soak.sh
#   KEYMINT_BIN=/path/to/other/keymint SOAK_MODES=noscrape bench/soak.sh
#
# Bounded in time (wrk -d; the server is stopped on exit). Prints RSS at
# start (ready, before any load), after 1 minute and at the end, and writes
# each series to $SOAK_RESULTS/<mode>.csv (seconds,rss_kib).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MINUTES=${SOAK_MINUTES:-10}
MODES=${SOAK_MODES:-noscrape scrape}
PORT=${PORT:-18090}
METRICS_PORT=${METRICS_PORT:-19474}
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keymint-soak.XXXXXX")
RESULTS=${SOAK_RESULTS:-$WORK/results}
mkdir -p "$RESULTS"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

if [ -n "${KEYMINT_BIN:-}" ]; then
  BIN=$KEYMINT_BIN   # e.g. an older build, for a before/after
else
  echo "== build (release)"
  cargo build --release -q
  BIN=$ROOT/target/release/keymint
fi

SRV=""
SCRAPER=""
SAMPLER=""
cleanup() {
  for pid in $SCRAPER $SAMPLER $SRV; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SRV="" SCRAPER="" SAMPLER=""
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$SRV/status"; }

summary=()
for mode in $MODES; do
  echo "== $mode, $MINUTES min"
  dir=$WORK/$mode; mkdir -p "$dir"
  "$BIN" bench-seed --count 1000 --out "$dir/keys.txt" --data-dir "$dir" 2>&1 | tail -1
  python3 bench/headers.py "$dir/keys.txt" 1000 apikey > "$dir/apikey.txt"
  KEYMINT__LOG__LEVEL=warn KEYMINT__SERVER__WORKERS=2 \
    KEYMINT__METRICS__BIND=127.0.0.1:$METRICS_PORT \
    "$BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$dir" > "$dir/server.log" 2>&1 &
  SRV=$!
  for _ in $(seq 300); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "$URL/readyz" >/dev/null || { echo "keymint did not become ready" >&2; cat "$dir/server.log" >&2; exit 1; }
  sleep 2
  start_rss=$(rss_kib)

  # RSS every 10 s while the load runs.
  csv=$RESULTS/$mode.csv
  echo "seconds,rss_kib" > "$csv"
  (t=0; while kill -0 "$SRV" 2>/dev/null; do
     echo "$t,$(rss_kib)" >> "$csv"; sleep 10; t=$((t + 10)); done) &
  SAMPLER=$!
  if [ "$mode" = scrape ]; then
    (while true; do curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" -o /dev/null; sleep 5; done) &
    SCRAPER=$!
  fi

  case $mode in
    random) wrk -t1 -c16 -d"${MINUTES}m" -s bench/random.lua "$URL" > "$dir/wrk.txt" ;;
    *) HEADERS_FILE=$dir/apikey.txt wrk -t1 -c16 -d"${MINUTES}m" -s bench/cycle.lua \
         "$URL/api/v1/token" > "$dir/wrk.txt" ;;
  esac
  end_rss=$(rss_kib)
  one_min=$(awk -F, '$1 == 60 {print $2}' "$csv")
  peak=$(awk '/^VmHWM:/{print $2}' "/proc/$SRV/status")
  requests=$(awk '/requests in/{print $1}' "$dir/wrk.txt")
  non2xx=$(awk '/Non-2xx/{print $5}' "$dir/wrk.txt")
  metrics_bytes=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | wc -c)
  cp "$dir/wrk.txt" "$RESULTS/$mode.wrk.txt"
  summary+=("$(printf '%-9s %10s %10s %10s %10s %11s %9s %10s' \
    "$mode" "$start_rss" "${one_min:-?}" "$end_rss" "$peak" "$requests" "${non2xx:-0}" "$metrics_bytes")")
  cleanup
done

echo
echo "== RSS in KiB (start = ready, before load; 1 min and end = under load; series in $RESULTS)"
printf '%-9s %10s %10s %10s %10s %11s %9s %10s\n' mode start "1 min" end peak requests non-2xx "/metrics B"
printf '%s\n' "${summary[@]}"
