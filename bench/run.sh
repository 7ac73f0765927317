#!/usr/bin/env bash
# Load benchmark: keymint side by side with the ceiling and the peer from
# ../shared/bench, in one run, on loopback only. Every wrk case is 3 × 10 s,
# 64 connections, one wrk thread; the median run is reported (../shared/bench/wrk3.py).
#
#   bench/run.sh                      # SQLite (1 000 and 1 000 000 keys)
#   KEYMINT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/run.sh
#                                     # also PostgreSQL (a keymint_bench database is made and dropped)
#
# Env: SHARED_BENCH (default ../shared/bench), BENCH_RESULTS (default a temp dir),
#      SKIP_PEER=1 / SKIP_CEILING=1 / SKIP_1M=1 to leave a reference out.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keymint-bench.XXXXXX")
export BENCH_RESULTS=${BENCH_RESULTS:-$WORK/results}
mkdir -p "$BENCH_RESULTS"
PORT=${PORT:-18080}
URL=http://127.0.0.1:$PORT
FACTS=$WORK/facts.json
echo '{}' > "$FACTS"
fact() { python3 - "$FACTS" "$1" "$2" <<'PY'
import json, sys
path, key, value = sys.argv[1:]
facts = json.load(open(path)); facts[key] = value; json.dump(facts, open(path, "w"))
PY
}

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
[ -f "$SHARED/wrk3.py" ] || { echo "no $SHARED/wrk3.py: set SHARED_BENCH" >&2; exit 1; }
cp "$SHARED/wrk3.py" "$WORK/wrk3.py"
WRK3="$WORK/wrk3.py"

echo "== build (release)"
cargo build --release -q
BIN=$ROOT/target/release/keymint
fact machine "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
fact commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

SRV=""
stop_server() {
  if [ -n "$SRV" ]; then
    kill "$SRV" 2>/dev/null || true
    wait "$SRV" 2>/dev/null || true
    SRV=""
  fi
}
trap 'stop_server; psql_drop' EXIT
psql_drop() { :; }

# start_server DATA_DIR [DATABASE_URL]: serves on $PORT, waits for /readyz.
start_server() {
  local dir=$1 db=${2:-}
  local args=(serve --bind "127.0.0.1:$PORT" --data-dir "$dir")
  [ -n "$db" ] && args+=(--database-url "$db")
  KEYMINT__LOG__LEVEL=warn KEYMINT__SERVER__WORKERS=2 "$BIN" "${args[@]}" > "$dir/server.log" 2>&1 &
  SRV=$!
  local t0; t0=$(date +%s%N)
  for _ in $(seq 300); do
    curl -sf "$URL/readyz" >/dev/null && break
    sleep 0.01
  done
  READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

peak_rss_mib() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$SRV/status"; }

run_case() { # LABEL SCRIPT-ARGS... (URL last)
  local label=$1; shift
  SERVER_PID=$SRV "$WRK3" "$label" -- wrk -t1 -c64 -d10s --latency "$@"
}

token_cases() { # SUFFIX KEYS_FILE
  local suffix=$1 keys=$2
  python3 bench/headers.py "$keys" 1000 basic > "$WORK/basic.txt"
  python3 bench/headers.py "$keys" 1000 apikey > "$WORK/apikey.txt"
  HEADERS_FILE=$WORK/basic.txt BODY="grant_type=client_credentials&scope=read" \
    run_case "km_token_form_$suffix" -s bench/cycle.lua "$URL/oauth/token"
  if [ "$suffix" = 1k ]; then
    HEADERS_FILE=$WORK/apikey.txt BODY="" run_case "km_token_header_$suffix" -s bench/cycle.lua "$URL/api/v1/token"
    # RFC 8693: the key travels in the body as the subject_token.
    python3 bench/headers.py "$keys" 1000 exchange > "$WORK/exchange.txt"
    BODIES_FILE=$WORK/exchange.txt run_case "km_token_8693_$suffix" -s bench/bodies.lua "$URL/oauth/token"
    # One hot key for all 64 connections: its rate bucket and usage counter
    # are one shard (DESIGN target: within 10 % of the many-keys case).
    python3 bench/headers.py "$keys" 1 basic > "$WORK/hot.txt"
    HEADERS_FILE=$WORK/hot.txt BODY="grant_type=client_credentials&scope=read" \
      run_case "km_token_hotkey_$suffix" -s bench/cycle.lua "$URL/oauth/token"
  fi
}

echo "== keymint on SQLite, 1 000 keys"
D1=$WORK/sqlite-1k; mkdir -p "$D1"
"$BIN" bench-seed --count 1000 --out "$D1/keys.txt" --data-dir "$D1" --scopes read,tokens:introspect 2>&1 | tail -1
start_server "$D1"
fact "start to ready, fresh SQLite database (ms)" "$READY_MS"
stop_server
start_server "$D1"
fact "start to ready, existing SQLite database (ms)" "$READY_MS"
token_cases 1k "$D1/keys.txt"
run_case km_jwks "$URL/.well-known/jwks.json"
# Introspection: one key asks about one token, over and over.
read -r IID ISECRET < <(head -1 "$D1/keys.txt")
TOKEN=$(curl -sf -X POST "$URL/api/v1/token" -H "X-API-Key: $ISECRET" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
echo "Authorization: Basic $(printf '%s:%s' "$IID" "$ISECRET" | base64 -w0)" > "$WORK/introspect.txt"
HEADERS_FILE=$WORK/introspect.txt BODY="token=$TOKEN" run_case km_introspect -s bench/cycle.lua "$URL/oauth/introspect"
fact "peak RSS under load, SQLite 1k (MiB)" "$(peak_rss_mib)"
stop_server

if [ "${SKIP_1M:-0}" != 1 ]; then
  echo "== keymint on SQLite, 1 000 000 keys"
  DM=$WORK/sqlite-1m; mkdir -p "$DM"
  "$BIN" bench-seed --count 1000000 --out "$DM/keys.txt" --data-dir "$DM" 2>&1 | tail -1
  start_server "$DM"
  token_cases 1m "$DM/keys.txt"
  fact "peak RSS under load, SQLite 1M (MiB)" "$(peak_rss_mib)"
  stop_server
fi

if [ -n "${KEYMINT_BENCH_POSTGRES_URL:-}" ]; then
  echo "== keymint on PostgreSQL, 1 000 keys"
  PGDB=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/keymint_bench")))' "$KEYMINT_BENCH_POSTGRES_URL")
  psql "$KEYMINT_BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS keymint_bench WITH (FORCE)" -c "CREATE DATABASE keymint_bench"
  psql_drop() { psql "$KEYMINT_BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS keymint_bench WITH (FORCE)" || true; }
  DP=$WORK/pg; mkdir -p "$DP"
  head -c 32 /dev/urandom | base64 > "$DP/master.key"
  export KEYMINT_MASTER_KEY_FILE=$DP/master.key
  "$BIN" bench-seed --count 1000 --out "$DP/keys.txt" --database-url "$PGDB" 2>&1 | tail -1
  start_server "$DP" "$PGDB"
  token_cases pg "$DP/keys.txt"
  fact "peak RSS under load, PostgreSQL (MiB)" "$(peak_rss_mib)"
  stop_server
  unset KEYMINT_MASTER_KEY_FILE
fi

if [ "${SKIP_CEILING:-0}" != 1 ] && [ -d "$SHARED/ceiling" ]; then
  echo "== ceiling"
  cp -r "$SHARED/ceiling" "$WORK/ceiling"
  (cd "$WORK/ceiling" && bash ./run.sh) || echo "ceiling failed" >&2
fi

if [ "${SKIP_PEER:-0}" != 1 ] && [ -d "$SHARED/peer" ] && command -v node >/dev/null; then
  echo "== peer (panva/oidc-provider)"
  mkdir -p "$WORK/peer"
  cp "$SHARED"/peer/*.mjs "$SHARED"/peer/*.json "$SHARED"/peer/*.lua "$SHARED"/peer/run.sh "$WORK/peer/"
  (cd "$WORK/peer" && bash ./run.sh) || echo "peer failed" >&2
fi

echo
echo "== results ($BENCH_RESULTS)"
python3 bench/report.py "$BENCH_RESULTS" "$FACTS" | tee "$WORK/report.txt"
