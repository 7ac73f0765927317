"""Security-event delivery, measured (BENCHMARKS.md, "Security events").

Starts keymint on a temp SQLite database with a loopback receiver allowed,
then measures:
  - revoke -> SET received at the receiver, over 30 revocations;
  - a bulk revoke of 1,000 keys with 0, 1 and 5 subscribed streams (what an
    admin write pays for the outbox).

Usage: python3 bench/events.py target/release/keymint [POLL_MS]
"""

import base64
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = sys.argv[1]
POLL_MS = sys.argv[2] if len(sys.argv) > 2 else "1000"
REVOKED = "urn:keymint:event:key-revoked"

arrivals = {}  # (event uri, key id) -> monotonic time of first arrival
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        now = time.monotonic()
        payload = json.loads(base64.urlsafe_b64decode(body.split(b".")[1] + b"=="))
        event = next(u for u in payload["events"] if u.startswith("urn:keymint:event:"))
        with lock:
            arrivals.setdefault((event, payload["sub_id"]["id"]), now)
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    receiver_port = free_port()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        KEYMINT_BOOTSTRAP_KEY_FILE=f"{work}/bootstrap.key",
        KEYMINT__LIMITS__ADMIN_PER_S="100000",
        KEYMINT__METRICS__BIND="127.0.0.1:0",
        KEYMINT__EVENTS__ALLOWED_NETWORKS='["127.0.0.0/8"]',
        KEYMINT__EVENTS__POLL_INTERVAL_MS=POLL_MS,
        RUST_LOG="warn",
    )
    server = subprocess.Popen(
        [BIN, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", work],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(400):
            try:
                urllib.request.urlopen(base + "/readyz")
                break
            except OSError:
                time.sleep(0.05)

        def call(method, path, token=None, body=None, headers=None):
            h = {"Content-Type": "application/json", **(headers or {})}
            if token:
                h["Authorization"] = "Bearer " + token
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(base + path, method=method, headers=h, data=data)
            with urllib.request.urlopen(req) as r:
                return json.loads(r.read() or b"null")

        bootstrap = open(f"{work}/bootstrap.key").read().strip()
        token = call("POST", "/api/v1/token", headers={"X-API-Key": bootstrap},
                     body={"audience": base + "/api"})["access_token"]
        stream = {"endpoint": f"http://127.0.0.1:{receiver_port}/", "audience": "urn:bench",
                  "events": [REVOKED]}
        call("POST", "/api/v1/event-streams", token, stream)

        latencies = []
        for i in range(30):
            key = call("POST", "/api/v1/keys", token, {"name": f"m{i}", "scopes": ["a"]})
            started = time.monotonic()
            call("POST", f"/api/v1/keys/{key['id']}/revoke", token, {})
            while (REVOKED, key["id"]) not in arrivals:
                time.sleep(0.002)
            latencies.append((arrivals[(REVOKED, key["id"])] - started) * 1000)
            time.sleep(0.05)
        latencies.sort()
        print(f"poll {POLL_MS} ms: revoke -> SET received over {len(latencies)} revocations: "
              f"median {statistics.median(latencies):.0f} ms, "
              f"p90 {latencies[int(len(latencies) * 0.9)]:.0f} ms, max {latencies[-1]:.0f} ms")

        def bulk(label):
            ids = [call("POST", "/api/v1/keys", token, {"name": f"b{label}-{i}", "scopes": ["a"]})["id"]
                   for i in range(1000)]
            started = time.monotonic()
            call("POST", "/api/v1/keys/revoke", token, {"ids": ids})
            return (time.monotonic() - started) * 1000

        one = [bulk(f"1.{n}") for n in range(3)]
        for s in call("GET", "/api/v1/event-streams", token)["items"]:
            call("PATCH", f"/api/v1/event-streams/{s['id']}", token, {"enabled": False})
        none = [bulk(f"0.{n}") for n in range(3)]
        for _ in range(5):
            call("POST", "/api/v1/event-streams", token,
                 {**stream, "endpoint": f"http://127.0.0.1:{free_port()}/"})
        five = [bulk(f"5.{n}") for n in range(3)]
        print(f"bulk revoke of 1000 keys (one transaction), median of 3: "
              f"0 streams {statistics.median(none):.0f} ms, 1 stream {statistics.median(one):.0f} ms, "
              f"5 streams {statistics.median(five):.0f} ms")
    finally:
        server.terminate()
        server.wait()
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
