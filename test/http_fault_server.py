#!/usr/bin/python3
"""Loopback HTTP server with fault injection for the ingest tests.

usage: http_fault_server.py ROOT PORTFILE

Binds 127.0.0.1 on a free port, writes the port to PORTFILE, serves until
killed. Routes (NAME is a file in ROOT):
  /f/NAME               the file, Content-Length, keep-alive
  /404, /500            that status
  /always429            429 with Retry-After: 1, every time
  /once429/NAME         429 with Retry-After: 1 on the first request, then the file
  /once503/NAME         503 on the first request, then the file
  /slow                 drips one byte every 0.2 s (never finishes)
  /cut/NAME             first half of the file, no Content-Length, then close
  /cutlen/NAME          full Content-Length, half the body, then close
  /html                 an HTML page labelled image/jpeg
  /loop                 302 to itself
  /big                  2,000,000 bytes without Content-Length
  /bigcl                2,000,000 bytes with Content-Length
  /bomb                 PNG header claiming 20000x20000 pixels
  /redir/NAME           302 to /f/NAME
  /hold/NAME            the file after 0.3 s (for concurrency limits)
  /robots/NAME?t=VALUE  the file with the header X-Robots-Tag: VALUE (URL-decoded)
  /custom               599 with the reason phrase "Custom Reason"
  /sleep/NAME           the file after 0.5 s (for stopping a run mid-way)
  /stall/NAME           the file after 7 s (progress output during a stall)
  /lastua               the User-Agent of the last other request (text)
  /count                number of requests served so far (text)
  /stats                "MAXACTIVE CONNECTIONS": most /hold requests in flight at
                        once, and TCP connections accepted, since /reset
  /reset                zeroes /stats
"""
import os
import struct
import urllib.parse
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
PORTFILE = sys.argv[2]
LOCK = threading.Lock()
SEEN = set()
COUNT = [0]
ACTIVE = [0, 0]   # in flight, most in flight
CONNS = set()
LASTUA = [""]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


BOMB = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, code, body, ctype="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def file(self, name):
        path = os.path.join(ROOT, os.path.basename(name))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def first_time(self):
        with LOCK:
            if self.path in SEEN:
                return False
            SEEN.add(self.path)
            return True

    def do_GET(self):
        with LOCK:
            COUNT[0] += 1
            CONNS.add(self.client_address)
        p, _, query = self.path.partition("?")
        parts = p.split("/", 2)
        route = parts[1] if len(parts) > 1 else ""
        name = parts[2] if len(parts) > 2 else ""
        if route != "lastua":
            with LOCK:
                LASTUA[0] = self.headers.get("User-Agent", "")
        if route == "lastua":
            with LOCK:
                return self.send_body(200, LASTUA[0].encode(), "text/plain")
        if route == "robots":
            tag = urllib.parse.parse_qs(query).get("t", [""])[0]
            return self.send_body(200, self.file(name) or b"", "image/png", [("X-Robots-Tag", tag)])
        if route == "custom":
            self.send_response(599, "Custom Reason")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route in ("sleep", "stall"):
            time.sleep(0.5 if route == "sleep" else 7)
            return self.send_body(200, self.file(name) or b"", "image/png")
        if route == "f":
            body = self.file(name)
            if body is None:
                return self.send_body(404, b"not found\n", "text/plain")
            return self.send_body(200, body, "image/jpeg")
        if route == "404":
            return self.send_body(404, b"not found\n", "text/plain")
        if route == "500":
            return self.send_body(500, b"boom\n", "text/plain")
        if route == "always429":
            return self.send_body(429, b"slow down\n", "text/plain", [("Retry-After", "1")])
        if route in ("once429", "once503"):
            if self.first_time():
                code = 429 if route == "once429" else 503
                return self.send_body(code, b"later\n", "text/plain", [("Retry-After", "1")])
            return self.send_body(200, self.file(name) or b"", "image/png")
        if route == "slow":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            self.close_connection = True
            return
        if route in ("cut", "cutlen"):
            body = self.file(name) or b""
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            if route == "cutlen":
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if route == "html":
            return self.send_body(200, b"<!doctype html><html><body>not an image</body></html>\n", "image/jpeg")
        if route == "loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route == "redir":
            self.send_response(302)
            self.send_header("Location", "/f/" + name)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route in ("big", "bigcl"):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            if route == "bigcl":
                self.send_header("Content-Length", "2000000")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\0" * 10000)
            except OSError:
                pass
            self.close_connection = True
            return
        if route == "bomb":
            return self.send_body(200, BOMB, "image/png")
        if route == "hold":
            with LOCK:
                ACTIVE[0] += 1
                ACTIVE[1] = max(ACTIVE[1], ACTIVE[0])
            time.sleep(0.3)
            with LOCK:
                ACTIVE[0] -= 1
            return self.send_body(200, self.file(name) or b"", "image/png")
        if route == "stats":
            with LOCK:
                return self.send_body(200, f"{ACTIVE[1]} {len(CONNS)}".encode(), "text/plain")
        if route == "reset":
            with LOCK:
                ACTIVE[1] = 0
                CONNS.clear()
            return self.send_body(200, b"ok", "text/plain")
        if route == "count":
            return self.send_body(200, str(COUNT[0]).encode(), "text/plain")
        return self.send_body(404, b"no such route\n", "text/plain")


class Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, PORTFILE)
    srv.serve_forever()


if __name__ == "__main__":
    main()
