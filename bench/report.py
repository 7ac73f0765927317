#!/usr/bin/env python3
"""Prints the benchmark table from wrk3.py summaries and the run's facts, then
the ratios issue #16 sets targets for (ok / MISSED / n/a when a side was not
run), then key search at 1M keys from search_<backend>.json (bench/search.sh).
Usage: report.py RESULTS_DIR FACTS_JSON"""
import json, os, re, sys
results, facts = sys.argv[1], json.load(open(sys.argv[2]))
def med(label):
    p = os.path.join(results, f"{label}.summary.json")
    return json.load(open(p))["median"] if os.path.exists(p) else None
rows = [
    ("keymint token (form, Basic), SQLite, 1k keys", "km_token_form_1k"),
    ("keymint token (one header), SQLite, 1k keys", "km_token_header_1k"),
    ("keymint token (RFC 8693), SQLite, 1k keys", "km_token_8693_1k"),
    ("keymint token (form), one hot key, SQLite", "km_token_hotkey_1k"),
    ("keymint token (form), SQLite, 1M keys", "km_token_form_1m"),
    ("keymint token (form), PostgreSQL, 1k keys", "km_token_form_pg"),
    ("keymint token (RFC 8693), PostgreSQL, 1k keys", "km_token_8693_pg"),
    ("keymint token (form), one hot key, PostgreSQL", "km_token_hotkey_pg"),
    ("keymint introspection, SQLite", "km_introspect"),
    ("keymint JWKS", "km_jwks"),
    ("ceiling POST /sign", "ceiling_sign_t1c64"),
    ("ceiling GET /hello", "ceiling_hello_t1c64"),
    ("peer oidc-provider client_credentials ES256", "peer_jwt_ES256_w2_t1c64"),
]
print(f"{'case':<48} {'req/s':>9} {'p50':>9} {'p99':>9} {'srv cores':>9} {'non2xx':>7}")
m = {}
for title, label in rows:
    r = med(label)
    m[label] = r
    if r:
        print(f"{title:<48} {r['rps']:>9.0f} {r['p50']:>9} {r['p99']:>9} {str(r['server_cores']):>9} {r['non2xx']:>7}")
    else:
        print(f"{title:<48} {'(not run)':>9}")

def ms(latency):
    """wrk's latency ("850.00us", "2.13ms", "1.02s") in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", latency or "")
    if not found:
        return None
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]

def verdict(value, target, at_least):
    if value is None:
        return "n/a"
    met = value >= target if at_least else value <= target
    return "ok" if met else "MISSED"

def ratio(a, b):
    return m[a]["rps"] / m[b]["rps"] if m.get(a) and m.get(b) else None

def line(title, value, target=None, at_least=True, unit=""):
    shown = f"{value:.2f}{unit}" if value is not None else "n/a"
    if target is None:
        print(f"  {title:<46} {shown:>10}")
    else:
        sign = ">=" if at_least else "<="
        goal = f"{target:.2f}" if target < 1 else f"{target:g}"
        print(f"  {title:<46} {shown:>10}   (target {sign} {goal}{unit})  {verdict(value, target, at_least)}")

print()
print("ratios (same run):")
line("token SQLite 1k / ceiling sign", ratio("km_token_form_1k", "ceiling_sign_t1c64"), 0.70)
p99 = ms(m["km_token_form_1k"]["p99"]) if m.get("km_token_form_1k") else None
line("p99 of token SQLite 1k", p99, 5, at_least=False, unit=" ms")
line("token SQLite 1k / peer", ratio("km_token_form_1k", "peer_jwt_ES256_w2_t1c64"), 6)
line("token SQLite 1M / 1k", ratio("km_token_form_1m", "km_token_form_1k"), 0.95)
line("token PostgreSQL / peer", ratio("km_token_form_pg", "peer_jwt_ES256_w2_t1c64"), 3)
line("JWKS / ceiling hello", ratio("km_jwks", "ceiling_hello_t1c64"), 0.85)
line("one hot key / many keys, SQLite", ratio("km_token_hotkey_1k", "km_token_form_1k"), 0.90)
line("one hot key / many keys, PostgreSQL", ratio("km_token_hotkey_pg", "km_token_form_pg"), 0.90)
line("RFC 8693 / client_credentials, SQLite", ratio("km_token_8693_1k", "km_token_form_1k"))
line("RFC 8693 / client_credentials, PostgreSQL", ratio("km_token_8693_pg", "km_token_form_pg"))

print()
print("key search, 1M keys (bench/search.sh; median of the term's calls, hits on the first page):")
for backend in ("sqlite", "postgres"):
    path = os.path.join(results, f"search_{backend}.json")
    if not os.path.exists(path):
        print(f"  {backend:<46} (not run)")
        continue
    try:
        terms = json.load(open(path))
    except ValueError:
        print(f"  {backend:<46} (unreadable: {path})")
        continue
    for term, t in terms.items():
        spread = f"p95 {t['p95_ms']}" if "p95_ms" in t else f"max {t.get('max_ms')}"
        title = f"{backend} {term} {t.get('term', '')!r} ({t.get('hits')} hits, {spread} ms)"
        line(title, t.get("median_ms"), 50, at_least=False, unit=" ms")
print()
for k, v in facts.items():
    print(f"{k}: {v}")
