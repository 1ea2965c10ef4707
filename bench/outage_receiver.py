"""Receiver for bench/outage.sh: answers 503 until the outage ends, then 200. Counts the
first and repeated 200-deliveries of each event id; GET /stats reports them."""
import http.server, json, sys, threading, time

port, outage_seconds = int(sys.argv[1]), float(sys.argv[2])
ends = time.time() + outage_seconds
lock = threading.Lock()
delivered, duplicates, refused = set(), 0, 0

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global duplicates, refused
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if time.time() < ends:
            with lock:
                refused += 1
            self.send_response(503)
        else:
            event_id = json.loads(body).get("id")
            with lock:
                if event_id in delivered:
                    duplicates += 1
                delivered.add(event_id)
            self.send_response(200)
        self.end_headers()

    def do_GET(self):
        with lock:
            body = json.dumps({"delivered": len(delivered), "duplicates": duplicates, "refused": refused}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
