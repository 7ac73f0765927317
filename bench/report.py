#!/usr/bin/env python3
"""Prints the benchmark table from wrk3.py summaries and the run's facts.
Usage: report.py RESULTS_DIR FACTS_JSON"""
import json, os, sys
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
def ratio(a, b):
    return f"{m[a]['rps'] / m[b]['rps']:.2f}" if m.get(a) and m.get(b) else "n/a"
print()
print("ratios (same run):")
print(f"  token SQLite 1k / ceiling sign      {ratio('km_token_form_1k', 'ceiling_sign_t1c64')}   (target >= 0.70)")
print(f"  token SQLite 1k / peer              {ratio('km_token_form_1k', 'peer_jwt_ES256_w2_t1c64')}   (target >= 6)")
print(f"  token SQLite 1M / 1k                {ratio('km_token_form_1m', 'km_token_form_1k')}   (target >= 0.95)")
print(f"  one hot key / 1k keys               {ratio('km_token_hotkey_1k', 'km_token_form_1k')}   (target >= 0.90)")
print(f"  RFC 8693 / client_credentials       {ratio('km_token_8693_1k', 'km_token_form_1k')}")
print(f"  token PostgreSQL / peer             {ratio('km_token_form_pg', 'peer_jwt_ES256_w2_t1c64')}   (target >= 3)")
print(f"  JWKS / ceiling hello                {ratio('km_jwks', 'ceiling_hello_t1c64')}   (target >= 0.85)")
print()
for k, v in facts.items():
    print(f"{k}: {v}")
