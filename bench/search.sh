#!/usr/bin/env bash
# Key search timings against a running keymint: for each term, the median
# (and min, max) of RUNS calls to GET /api/v1/keys?q=TERM, as curl's
# time_total, plus how many keys the first page held.
#
#   bench/search.sh URL TOKEN TERM...       # TOKEN: an admin-audience JWT with admin:keys:read
#   KEY=km_… bench/search.sh URL - TERM...  # fetch the token with the API key KEY
#
# Env: RUNS (default 20), LIMIT (page size, default 50; empty: the server's default).
# Output: one line per term, tab-separated: term, median_ms, min_ms, max_ms, items.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
URL=${1%/}; TOKEN=$2; shift 2
RUNS=${RUNS:-20}
LIMIT=${LIMIT-50}
if [ "$TOKEN" = - ]; then
  : "${KEY:?TOKEN is - but KEY is not set}"
  TOKEN=$(curl -sf -X POST "$URL/api/v1/token" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d "{\"audience\":\"$URL/api\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
fi
encode() { python3 -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$1"; }

printf 'term\tmedian_ms\tmin_ms\tmax_ms\titems\n'
for term in "$@"; do
  path="/api/v1/keys?q=$(encode "$term")${LIMIT:+&limit=$LIMIT}"
  items=$(curl -sf "$URL$path" -H "Authorization: Bearer $TOKEN" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))') ||
    { echo "search for '$term' failed" >&2; exit 1; }
  times=()
  for _ in $(seq "$RUNS"); do
    times+=("$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$URL$path" \
      -H "Authorization: Bearer $TOKEN")")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
term, items = sys.argv[1], sys.argv[2]
rows = [line.split() for line in sys.stdin if line.strip()]
bad = [code for code, _ in rows if code != "200"]
if bad:
    sys.exit(f"search for {term!r}: answers {sorted(set(bad))}")
ms = [float(t) * 1000 for _, t in rows]
print(f"{term}\t{statistics.median(ms):.1f}\t{min(ms):.1f}\t{max(ms):.1f}\t{items}")
' "$term" "$items"
done
