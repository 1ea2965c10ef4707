"""Crash-loop soak for bench/soak.sh (not run in CI).

Publishes batches of events at a steady rate while SIGKILLing the server every 5-20 s and
starting it again on the same data dir; two http targets of one rule receive them, one of
them flaky (503 and 400 at random). Then the target recovers, and an audit checks that every
acknowledged event reached every target or is one of its dead letters, counting repeats.

Usage: soak.py BINARY SECONDS RATE (events/s)
"""
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

binary, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
PORT, HOOK = 8797, 8798
lock = threading.Lock()
received = {"/steady": {}, "/flaky": {}}
flaky = [True]


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        answer = 200
        if self.path == "/flaky" and flaky[0]:
            roll = random.random()
            answer = 503 if roll < 0.10 else 400 if roll < 0.12 else 200
        if answer == 200:
            event_id = json.loads(body).get("id")
            with lock:
                got = received[self.path]
                got[event_id] = got.get(event_id, 0) + 1
        self.send_response(answer)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = http.server.ThreadingHTTPServer(("127.0.0.1", HOOK), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()

data = tempfile.mkdtemp()
base = f"http://127.0.0.1:{PORT}"
server = None


def start():
    global server
    env = dict(os.environ, SWITCHYARD_LOG_LEVEL="error")
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{PORT}", "--data-dir", data,
         "--target-allow-cidr", "127.0.0.0/8"],
        stdout=subprocess.DEVNULL, env=env)
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit("the server did not come up")


def call(method, path, body=None):
    key = open(os.path.join(data, "admin.key")).read().strip()
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}",
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


start()
target = lambda tid, path, extra: dict(
    {"id": tid, "kind": "http", "http": {"url": f"http://127.0.0.1:{HOOK}{path}"}}, **extra)
call("PUT", "/v1/buses/default/rules/soak", {
    "pattern": {"source": ["/soak"]},
    "targets": [target("steady", "/steady", {}),
                target("flaky", "/flaky", {"retry": {"initial_backoff_ms": 200,
                                                      "max_backoff_ms": 2000}})]})

acked, stop = set(), [False]


def publish():
    n, batch = 0, 20
    while not stop[0]:
        ids = [f"s{n + i}" for i in range(batch)]
        n += batch
        events = [{"specversion": "1.0", "id": i, "source": "/soak", "type": "soak.event",
                   "data": {"pad": "x" * 100}} for i in ids]
        try:
            key = open(os.path.join(data, "admin.key")).read().strip()
            req = urllib.request.Request(
                base + "/v1/buses/default/events", data=json.dumps(events).encode(),
                headers={"Authorization": f"Bearer {key}",
                         "content-type": "application/cloudevents-batch+json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    with lock:
                        acked.update(ids)
        except Exception:
            pass  # refused or cut off by a kill: not acknowledged, not promised
        time.sleep(batch / rate)


publisher = threading.Thread(target=publish)
publisher.start()
began, kills = time.time(), 0
while time.time() - began < seconds:
    time.sleep(random.uniform(5, 20))
    server.send_signal(signal.SIGKILL)
    server.wait()
    kills += 1
    start()
stop[0] = True
publisher.join()
flaky[0] = False


def dead_letters():
    out, cursor = {"steady": set(), "flaky": set()}, None
    while True:
        page = call("GET", "/v1/buses/default/dead-letters?limit=1000"
                    + (f"&cursor={cursor}" if cursor else ""))
        for dl in page["dead_letters"]:
            out[dl["target"]].add(dl["event"]["id"])
        cursor = page.get("next_cursor")
        if not cursor:
            return out


deadline = time.time() + 300
while True:
    letters = dead_letters()
    with lock:
        missing = {t: [i for i in acked if i not in received[f"/{t}"] and i not in letters[t]]
                   for t in ("steady", "flaky")}
    if not any(missing.values()) or time.time() > deadline:
        break
    time.sleep(2)

with lock:
    print(f"ran {seconds:.0f} s at {rate:.0f} events/s with {kills} SIGKILLs; "
          f"{len(acked)} events acknowledged")
    for t in ("steady", "flaky"):
        got = received[f"/{t}"]
        repeats = sum(c - 1 for i, c in got.items() if i in acked)
        print(f"target {t}: {sum(1 for i in acked if i in got)} delivered, "
              f"{len(letters[t])} dead letters, {repeats} repeated deliveries, "
              f"{len(missing[t])} lost")
server.send_signal(signal.SIGTERM)
server.wait()
hook.shutdown()
sys.exit(1 if any(missing.values()) else 0)
