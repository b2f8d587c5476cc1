#!/usr/bin/env python3
"""The smallest Docker API server: answers `/_ping` and every GET with an empty list at
once, on the Unix socket given as its argument. bench/docker-api.sh times `docker ps -a`
against it: what the docker CLI itself costs (start-up, version negotiation), which is
part of every figure of boxd and podman alike."""
import http.server, socketserver, sys, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self, body):
        self.send_response(200)
        self.send_header("Api-Version", "1.43")
        self.send_header("Content-Type", "application/json" if body else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def do_HEAD(self): self.answer(b"")
    def do_GET(self): self.answer(b"OK" if self.path.endswith("/_ping") else b"[]")
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    def get_request(self):
        r, _ = super().get_request()
        return r, ("local", 0)
path = sys.argv[1]
if os.path.exists(path): os.unlink(path)
S(path, H).serve_forever()
