#!/usr/bin/env bash
# Load benchmark: keymint side by side with the ceiling and the peer from
# ../shared/bench, in one run, on loopback only. Every wrk case is 3 × 10 s,
# 64 connections, one wrk thread; the median run is reported (../shared/bench/wrk3.py).
#
#   bench/run.sh          # SQLite (1 000 and 1 000 000 keys), and PostgreSQL when
#                         # postgres://postgres@127.0.0.1:5432/test answers `SELECT 1`
#                         # (a keymint_bench database is made and dropped there)
#   SKIP_PG=1 bench/run.sh                                  # SQLite only
#   KEYMINT_BENCH_POSTGRES_URL=postgres://u@host/db bench/run.sh   # another server; must answer
#
# With 1 000 000 keys (SQLite, and PostgreSQL unless SKIP_PG=1) it also times key
# search (`GET /api/v1/keys?q=`) with bench/search.sh when that script exists.
#
# Env: SHARED_BENCH (default ../shared/bench), BENCH_RESULTS (default a temp dir),
#      DURATION (wrk -d per run, default 10s; shorter only to try the script),
#      SKIP_PEER=1 / SKIP_CEILING=1 / SKIP_1M=1 / SKIP_PG=1 to leave a part out.
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
  # The admin rate limit (default 20/s per key) would answer the search
  # timings' back-to-back calls with 429; the token cases never meet it.
  KEYMINT__LOG__LEVEL=warn KEYMINT__SERVER__WORKERS=2 KEYMINT__LIMITS__ADMIN_PER_S=100000 \
    "$BIN" "${args[@]}" > "$dir/server.log" 2>&1 &
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
  SERVER_PID=$SRV "$WRK3" "$label" -- wrk -t1 -c64 "-d${DURATION:-10s}" --latency "$@"
}

token_cases() { # SUFFIX KEYS_FILE CASE... (form header 8693 hotkey)
  local suffix=$1 keys=$2 case; shift 2
  for case in "$@"; do
    case $case in
      form)
        python3 bench/headers.py "$keys" 1000 basic > "$WORK/basic.txt"
        HEADERS_FILE=$WORK/basic.txt BODY="grant_type=client_credentials&scope=read" \
          run_case "km_token_form_$suffix" -s bench/cycle.lua "$URL/oauth/token" ;;
      header)
        python3 bench/headers.py "$keys" 1000 apikey > "$WORK/apikey.txt"
        HEADERS_FILE=$WORK/apikey.txt BODY="" run_case "km_token_header_$suffix" -s bench/cycle.lua "$URL/api/v1/token" ;;
      8693)
        # RFC 8693: the key travels in the body as the subject_token.
        python3 bench/headers.py "$keys" 1000 exchange > "$WORK/exchange.txt"
        BODIES_FILE=$WORK/exchange.txt run_case "km_token_8693_$suffix" -s bench/bodies.lua "$URL/oauth/token" ;;
      hotkey)
        # One hot key for all 64 connections: its rate bucket and usage counter
        # are one shard (DESIGN target: within 10 % of the many-keys case).
        python3 bench/headers.py "$keys" 1 basic > "$WORK/hot.txt"
        HEADERS_FILE=$WORK/hot.txt BODY="grant_type=client_credentials&scope=read" \
          run_case "km_token_hotkey_$suffix" -s bench/cycle.lua "$URL/oauth/token" ;;
      *) echo "token_cases: unknown case $case" >&2; exit 1 ;;
    esac
  done
}

# admin_key DATA_DIR [DATABASE_URL]: before the server starts, an admin key
# (keys:read) made offline with the CLI; its secret goes to DATA_DIR/admin.secret.
admin_key() {
  local dir=$1 db=${2:-} args=(keys create --name timing-admin --scopes admin:keys:read --data-dir "$1")
  [ -n "$db" ] && args+=(--database-url "$db")
  "$BIN" "${args[@]}" > "$dir/admin.secret" 2> "$dir/admin.log" \
    || echo "no admin key (see $dir/admin.log): search timings will be skipped" >&2
}

# Key search terms against bench-seed's names (`bench-<n>`, n < 1 000 000) and
# the keys' ids: one name, hundreds of names and ids, every key.
SEARCH_RARE=${SEARCH_RARE:-123456} SEARCH_MIDDLE=${SEARCH_MIDDLE:-7777} SEARCH_COMMON=${SEARCH_COMMON:-bench}

# search_cases BACKEND DATA_DIR: with the server up, exchanges the admin key for an
# admin-audience token and times key search with bench/search.sh (URL TOKEN TERM...,
# one tab-separated line per term: term median_ms min_ms max_ms items), kept as
# $BENCH_RESULTS/search_BACKEND.json = {"rare": {"term", "median_ms", "min_ms",
# "max_ms", "hits"}, "middle": ..., "common": ...} for report.py (hits: the first
# page's items).
search_cases() {
  local backend=$1 dir=$2 token
  if [ ! -f bench/search.sh ]; then
    echo "bench/search.sh not found: search timings skipped"
    return 0
  fi
  token=$(curl -sf -X POST "$URL/api/v1/token" -H "X-API-Key: $(cat "$dir/admin.secret")" \
      -H 'Content-Type: application/json' -d "{\"audience\":\"$URL/api\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') \
    || { echo "no admin token: search timings skipped" >&2; return 0; }
  echo "== key search, $backend, 1 000 000 keys"
  bash bench/search.sh "$URL" "$token" "$SEARCH_RARE" "$SEARCH_MIDDLE" "$SEARCH_COMMON" \
    > "$WORK/search_$backend.tsv" || { echo "bench/search.sh failed ($backend)" >&2; return 0; }
  cat "$WORK/search_$backend.tsv"
  python3 - "$WORK/search_$backend.tsv" "$SEARCH_RARE" "$SEARCH_MIDDLE" "$SEARCH_COMMON" \
    > "$BENCH_RESULTS/search_$backend.json" <<'PY'
import csv, json, sys
rows = {r["term"]: r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
out = {}
for kind, term in zip(("rare", "middle", "common"), sys.argv[2:]):
    if term in rows:
        r = rows[term]
        out[kind] = {"term": term, "median_ms": float(r["median_ms"]), "min_ms": float(r["min_ms"]),
                     "max_ms": float(r["max_ms"]), "hits": int(r["items"])}
json.dump(out, sys.stdout)
PY
}

echo "== keymint on SQLite, 1 000 keys"
D1=$WORK/sqlite-1k; mkdir -p "$D1"
"$BIN" bench-seed --count 1000 --out "$D1/keys.txt" --data-dir "$D1" --scopes read,tokens:introspect 2>&1 | tail -1
start_server "$D1"
fact "start to ready, fresh SQLite database (ms)" "$READY_MS"
stop_server
start_server "$D1"
fact "start to ready, existing SQLite database (ms)" "$READY_MS"
token_cases 1k "$D1/keys.txt" form header 8693 hotkey
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
  admin_key "$DM"
  start_server "$DM"
  token_cases 1m "$DM/keys.txt" form
  fact "peak RSS under load, SQLite 1M (MiB)" "$(peak_rss_mib)"
  search_cases sqlite "$DM"
  stop_server
fi

# PostgreSQL: the local test server by default, when it answers; an explicit
# KEYMINT_BENCH_POSTGRES_URL must answer (set -e stops the run otherwise).
PG_URL=${KEYMINT_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
RUN_PG=0
if [ "${SKIP_PG:-0}" = 1 ]; then
  echo "== PostgreSQL left out (SKIP_PG=1)"
elif [ -n "${KEYMINT_BENCH_POSTGRES_URL:-}" ]; then
  RUN_PG=1
elif command -v psql >/dev/null && psql "$PG_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
  RUN_PG=1
else
  echo "== PostgreSQL left out: nothing answers at $PG_URL (set KEYMINT_BENCH_POSTGRES_URL)"
fi

if [ "$RUN_PG" = 1 ]; then
  PGDB=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/keymint_bench")))' "$PG_URL")
  pg_fresh() { psql "$PG_URL" -qc "DROP DATABASE IF EXISTS keymint_bench WITH (FORCE)" -c "CREATE DATABASE keymint_bench"; }
  psql_drop() { psql "$PG_URL" -qc "DROP DATABASE IF EXISTS keymint_bench WITH (FORCE)" || true; }

  echo "== keymint on PostgreSQL, 1 000 keys"
  pg_fresh
  DP=$WORK/pg; mkdir -p "$DP"
  head -c 32 /dev/urandom | base64 > "$DP/master.key"
  export KEYMINT_MASTER_KEY_FILE=$DP/master.key
  "$BIN" bench-seed --count 1000 --out "$DP/keys.txt" --database-url "$PGDB" 2>&1 | tail -1
  start_server "$DP" "$PGDB"
  token_cases pg "$DP/keys.txt" form 8693 hotkey
  fact "peak RSS under load, PostgreSQL (MiB)" "$(peak_rss_mib)"
  stop_server

  if [ "${SKIP_1M:-0}" != 1 ]; then
    echo "== keymint on PostgreSQL, 1 000 000 keys"
    pg_fresh
    DPM=$WORK/pg-1m; mkdir -p "$DPM"
    head -c 32 /dev/urandom | base64 > "$DPM/master.key"
    export KEYMINT_MASTER_KEY_FILE=$DPM/master.key
    "$BIN" bench-seed --count 1000000 --out "$DPM/keys.txt" --database-url "$PGDB" 2>&1 | tail -1
    admin_key "$DPM" "$PGDB"
    start_server "$DPM" "$PGDB"
    search_cases postgres "$DPM"
    stop_server
  fi
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
