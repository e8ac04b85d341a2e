#!/usr/bin/env python3
"""ACME profiles in front of Pebble 2.4, which has none.

Implements exactly the server part of draft-ietf-acme-profiles-00:
- section 3: the directory's meta object gets a "profiles" member (name ->
  description), from --profiles NAME=DESCRIPTION,...;
- section 4: a newOrder payload's "profile" must be one of them, else the
  request is refused with urn:ietf:params:acme:error:invalidProfile; the
  order object (newOrder, order and finalize responses) carries the
  requested "profile".
Everything else goes to Pebble unchanged. The Host header is passed on as
it came, so the URLs Pebble builds and the JWS "url" it checks name this
proxy. Each newOrder is logged to --log as "neworder profile=NAME" (or
"profile=-" without one).

Usage: profiles_proxy.py --listen PORT --pebble PORT --cert F --key F
                         --ca F --profiles a=x,b=y --log FILE
"""
import argparse
import base64
import http.client
import http.server
import json
import ssl
import sys
import threading

ORDER_PROFILE = {}  # Pebble order id -> profile
LOCK = threading.Lock()


def b64url_json(s):
    s = s + "=" * (-len(s) % 4)
    return json.loads(base64.urlsafe_b64decode(s.encode()))


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def forward(self, body):
        conn = http.client.HTTPSConnection("127.0.0.1", ARGS.pebble, context=UPSTREAM, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = [(k, v) for k, v in resp.getheaders()
               if k.lower() not in ("connection", "transfer-encoding", "content-length")]
        conn.close()
        return resp.status, out, data

    def reply(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else None
        path = self.path.split("?")[0]
        profile = None
        if self.command == "POST" and path == "/order-plz":
            payload = b64url_json(json.loads(body)["payload"])
            profile = payload.get("profile")
            with open(ARGS.log, "a") as f:
                f.write("neworder profile=%s\n" % (profile if profile is not None else "-"))
            if profile is not None and profile not in PROFILES:
                problem = json.dumps({
                    "type": "urn:ietf:params:acme:error:invalidProfile",
                    "detail": "profile %r is not offered" % profile}).encode()
                self.reply(400, [("Content-Type", "application/problem+json")], problem)
                return
        status, headers, data = self.forward(body)
        ctype = dict((k.lower(), v) for k, v in headers).get("content-type", "")
        if path == "/dir" and status == 200:
            d = json.loads(data)
            d.setdefault("meta", {})["profiles"] = PROFILES
            data = json.dumps(d).encode()
        elif path == "/order-plz" and status == 201:
            loc = dict((k.lower(), v) for k, v in headers).get("location", "")
            oid = loc.rstrip("/").rsplit("/", 1)[-1]
            with LOCK:
                ORDER_PROFILE[oid] = profile
            if profile is not None:
                o = json.loads(data)
                o["profile"] = profile
                data = json.dumps(o).encode()
        elif (path.startswith("/my-order/") or path.startswith("/finalize-order/")) \
                and "json" in ctype and status == 200:
            oid = path.rstrip("/").rsplit("/", 1)[-1]
            with LOCK:
                profile = ORDER_PROFILE.get(oid)
            if profile is not None:
                o = json.loads(data)
                o["profile"] = profile
                data = json.dumps(o).encode()
        self.reply(status, headers, data)

    do_GET = do_POST = do_HEAD = handle_any


def main():
    global ARGS, PROFILES, UPSTREAM
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--pebble", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--profiles", required=True)
    p.add_argument("--log", required=True)
    ARGS = p.parse_args()
    PROFILES = dict(kv.split("=", 1) for kv in ARGS.profiles.split(","))
    UPSTREAM = ssl.create_default_context(cafile=ARGS.ca)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.listen), Proxy)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("profiles proxy on 127.0.0.1:%d -> pebble :%d" % (ARGS.listen, ARGS.pebble),
          file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
