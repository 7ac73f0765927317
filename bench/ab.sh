#!/usr/bin/env bash
# A/B: the token form case (SQLite, 1 000 keys, wrk -t1 -c64, 3 × 10 s per
# round) for two keymint binaries, alternated A, B, A, B so drift on a shared
# machine hits both. Each round seeds a fresh database with its own binary.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]     (default 2 rounds each)
#   AB_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/ab.sh OLD NEW
#                         # on PostgreSQL: a keymint_ab database per round, dropped after
#
# e.g. git worktree add /tmp/old <rev> && (cd /tmp/old && cargo build --release)
#      bench/ab.sh /tmp/old/target/release/keymint target/release/keymint
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1"); B=$(realpath "$2"); ROUNDS=${3:-2}
SHARED=${SHARED_BENCH:-$(pwd)/../shared/bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keymint-ab.XXXXXX")
export BENCH_RESULTS=$WORK/results
mkdir -p "$BENCH_RESULTS"
PORT=${PORT:-18090}
command -v wrk >/dev/null || { echo "wrk is needed (bench/run.sh installs it)" >&2; exit 1; }
SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; true' EXIT
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    BIN=$A; [ "$side" = B ] && BIN=$B
    D=$WORK/$side-$round; mkdir -p "$D"
    DB_ARGS=()
    if [ -n "${AB_POSTGRES_URL:-}" ]; then
      psql "$AB_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS keymint_ab WITH (FORCE)" -c "CREATE DATABASE keymint_ab"
      DB_ARGS=(--database-url "$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/keymint_ab")))' "$AB_POSTGRES_URL")")
      head -c 32 /dev/urandom | base64 > "$D/master.key"
      export KEYMINT_MASTER_KEY_FILE=$D/master.key
    fi
    "$BIN" bench-seed --count 1000 --out "$D/keys.txt" --data-dir "$D" "${DB_ARGS[@]}" > /dev/null 2>&1
    python3 bench/headers.py "$D/keys.txt" 1000 basic > "$D/basic.txt"
    KEYMINT__LOG__LEVEL=warn KEYMINT__SERVER__WORKERS=2 \
      "$BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$D" "${DB_ARGS[@]}" > "$D/server.log" 2>&1 &
    SRV=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.1; done
    HEADERS_FILE=$D/basic.txt BODY="grant_type=client_credentials&scope=read" SERVER_PID=$SRV \
      python3 "$SHARED/wrk3.py" "ab_${side}_round$round" -- \
      wrk -t1 -c64 -d10s --latency -s bench/cycle.lua "http://127.0.0.1:$PORT/oauth/token"
    kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
  done
done
[ -n "${AB_POSTGRES_URL:-}" ] && psql "$AB_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS keymint_ab WITH (FORCE)"
echo "raw runs under $BENCH_RESULTS"
