#!/usr/bin/env python3
"""Turns `id secret` lines into credential headers for bench/cycle.lua.
Usage: headers.py KEYS_FILE N MODE > out   (MODE: basic | apikey | exchange; N keys spread over the file)
`exchange` prints RFC 8693 form bodies (one per line, for bench/bodies.lua) instead of headers."""
import base64, sys
path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path).read().split("\n")
lines = [l for l in lines if l]
step = max(1, len(lines) // n)
for line in lines[::step][:n]:
    key_id, secret = line.split(" ")
    if mode == "basic":
        print("Authorization: Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode())
    elif mode == "exchange":
        print("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
              "&subject_token_type=urn%3Akeymint%3Aparams%3Atoken-type%3Aapi-key"
              "&subject_token=" + secret)
    else:
        print("X-API-Key: " + secret)
