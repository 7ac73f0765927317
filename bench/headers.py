#!/usr/bin/env python3
"""Turns `id secret` lines into credential headers for bench/cycle.lua.
Usage: headers.py KEYS_FILE N MODE > out   (MODE: basic | apikey; N keys spread over the file)"""
import base64, sys
path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path).read().split("\n")
lines = [l for l in lines if l]
step = max(1, len(lines) // n)
for line in lines[::step][:n]:
    key_id, secret = line.split(" ")
    if mode == "basic":
        print("Authorization: Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode())
    else:
        print("X-API-Key: " + secret)
