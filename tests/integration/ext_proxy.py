#!/usr/bin/env python3
"""ACME extensions Pebble 2.4 lacks, in front of it.

--profiles NAME=DESCRIPTION,...: exactly the server part of
draft-ietf-acme-profiles-00:
- section 3: the directory's meta object gets a "profiles" member;
- section 4: a newOrder payload's "profile" must be one of them, else
  urn:ietf:params:acme:error:invalidProfile; the order object (newOrder,
  order and finalize responses) carries the requested "profile".
Each newOrder is logged as "neworder profile=NAME" (or "profile=-").

--dns-account KNOT_PORT:TSIG_NAME:TSIG_SECRET_FILE: the server part of
draft-ietf-acme-dns-account-label-03:
- every authorization offering dns-01 also offers dns-account-01 (same
  token and URL, so the client's signed response reaches Pebble's URL);
- a response to it is validated here by a real DNS query to Knot: the TXT
  at "_" + base32(SHA-256(account URL)[:10]) + "._acme-challenge.NAME"
  must hold base64url(SHA-256(TOKEN "." JWK thumbprint)); the account URL
  is the JWS kid, the thumbprint that of the JWK the account registered
  with (seen at newAccount). When it holds, the same value is put at
  _acme-challenge.NAME (RFC 2136 with TSIG) so that Pebble's dns-01
  check, the only one it knows, passes; else the response is refused with
  urn:ietf:params:acme:error:incorrectResponse naming the record.
Each check is logged as "dns-account-01 NAME LABEL found|missing".

--dns-persist ISSUER (with --dns-account's KNOT_PORT:TSIG: for Knot):
the server part of draft-ietf-acme-dns-persist-02 (20 September 2026):
- section 3.2 and 4.1: the directory's meta gets "issuerDomainNames":
  [ISSUER], "accountHashPrefix": "https://HOST/account-hash/" (and
  caaIdentities [ISSUER]);
- section 3.1: every authorization offering dns-01 also offers
  dns-persist-01 (no token) with "issuerDomainNames": [ISSUER];
- section 4.1-4.2: a response to it is validated by a DNS query for
  _validation-persist.NAME TXT (a record's strings joined). Each record is
  an RFC 8659 issue-value; those naming another issuer are ignored; for
  ours a duplicate parameter, a missing accounturi, an accounturi that is
  not PREFIX "sha-256/" plus 43 base64url characters, or a persistUntil
  that is not a base-10 integer is malformed; the hashed URI must be
  SHA-256(len || NAME || thumbprint || KID) or the same with NAME "*"
  (section 4.2: over every key the account has used, the current one
  first: the one it registered with and those of each keyChange, RFC 8555
  7.3.5); a persistUntil in the past is refused
  (unauthorized); a wildcard authorization needs policy=wildcard (case-
  insensitive); unknown parameters are ignored. Then Pebble's dns-01 is
  satisfied as above; section 4.1 item 5: a valid authorization validated
  by records that all carry persistUntil expires no later than the latest
  of them (its "expires" is clamped, logged "authz NAME expires clamped"). Logged as "dns-persist-01 NAME found|missing|
  expired|malformed".
--clock-offset SECONDS: the CA's clock for persistUntil runs this far ahead
of the real one (a CA validating later than the client checked).
--self-test checks this parser against the draft's section 10.2 test
vector and the refusals above, then exits.

Everything else goes to Pebble unchanged; the Host header is passed on, so
the URLs Pebble builds and the JWS "url" it checks name this proxy.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import re
import ssl
import time
import subprocess
import sys
import threading

ORDER_PROFILE = {}  # Pebble order id -> profile
CHALLENGES = {}     # challenge path -> (identifier, token)
THUMBS = {}         # account URL -> JWK thumbprints, the current key's first
UNTIL = {}          # (identifier, wildcard) -> persistUntil of the records it was validated by
LOCK = threading.Lock()


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def b64url_json(s):
    s = s + "=" * (-len(s) % 4)
    return json.loads(base64.urlsafe_b64decode(s.encode()))


def thumbprint(jwk):
    # RFC 7638: the required members, lexicographic order, no whitespace
    keys = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in keys}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canon.encode()).digest())


def account_label(url):
    return "_" + base64.b32encode(hashlib.sha256(url.encode()).digest()[:10]).decode().lower()


PERSIST_DRAFT = "draft-ietf-acme-dns-persist-02"
TAG = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9])*$")
PVALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")
HASH = re.compile(r"^[A-Za-z0-9_-]{43}$")


def hashed_uri(prefix, domain, thumb, kid):
    """section 4.1 item 3: PREFIX "sha-256/" b64url(SHA-256(len || domain ||
    thumbprint || account URL))."""
    d = domain.encode()
    return prefix + "sha-256/" + b64url(hashlib.sha256(bytes([len(d)]) + d + thumb.encode()
                                                        + kid.encode()).digest())


def persist_check(value, issuers, prefix, ident, thumbs, kid, wild, now):
    """One record against one authorization: None (another issuer's or not
    an issue-value: ignored), "ok", or "malformed: ...", "unauthorized: ..."
    (section 9.3.1)."""
    head, _, rest = value.partition(";")
    issuer = head.strip().lower().rstrip(".")
    if issuer not in issuers:
        return None
    params = {}
    for p in rest.split(";") if rest.strip() else []:
        tag, eq, v = p.partition("=")
        tag, v = tag.strip(), v.strip()
        if not eq or not TAG.match(tag) or not PVALUE.match(v):
            return "malformed: parameter %r is not tag=value (RFC 8659 section 4.2)" % p.strip()
        if tag in params:
            return "malformed: duplicate parameter %s" % tag
        params[tag] = v
    auri = params.get("accounturi")
    if auri is None:
        return "malformed: no accounturi"
    if not auri.startswith(prefix + "sha-256/") or not HASH.match(auri[len(prefix) + 8:]):
        return "malformed: accounturi is not a %ssha-256/ hashed URI" % prefix
    until = params.get("persistUntil")
    if until is not None and not re.match(r"^[0-9]+$", until):
        return "malformed: persistUntil %r is not a base-10 integer" % until
    if not any(auri in (hashed_uri(prefix, ident, t, kid), hashed_uri(prefix, "*", t, kid))
               for t in thumbs):
        return "unauthorized: accounturi does not name this account"
    if until is not None and int(until) < now:
        return "unauthorized: persistUntil %s has passed" % until
    if wild and params.get("policy", "").lower() != "wildcard":
        return "unauthorized: a wildcard needs policy=wildcard"
    return "ok"


def persist_until_of(value):
    """The persistUntil of a record persist_check accepted, or None."""
    for p in value.partition(";")[2].split(";"):
        tag, _, v = p.partition("=")
        if tag.strip() == "persistUntil":
            return int(v.strip())
    return None


def self_test():
    tp, kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "https://ca.example/acct/123"
    pre = "https://ca.example/account-hash/"
    u = hashed_uri(pre, "example.com", tp, kid)
    assert u == pre + "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw", u
    assert hashed_uri(pre, "*", tp, kid) == pre + "sha-256/NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug"

    def chk(v, wild=False, now=1721952000):
        return persist_check(v, ["authority.example"], pre, "example.com", [tp], kid, wild, now)
    base = "authority.example; accounturi=" + u
    assert chk(base) == "ok"
    assert chk("AUTHORITY.example ;accounturi = %s; future=x" % u) == "ok"
    assert chk(base.replace(u, hashed_uri(pre, "*", tp, kid))) == "ok"
    assert chk("other.example; accounturi=" + u) is None
    assert chk(base + "; persistUntil=1721952000") == "ok"
    assert persist_until_of(base + "; persistUntil = 1721952000 ;policy=wildcard") == 1721952000
    assert persist_until_of(base) is None
    assert chk(base + "; persistUntil=1721951999").startswith("unauthorized: persistUntil")
    assert chk(base + "; persistUntil=2024-07-26").startswith("malformed")
    assert chk(base + "; policy=wildcard; policy=wildcard").startswith("malformed: duplicate")
    assert chk("authority.example; policy=wildcard").startswith("malformed: no accounturi")
    assert chk("authority.example; accounturi=" + kid).startswith("malformed")
    assert chk(base, wild=True).startswith("unauthorized")
    assert chk(base + "; policy=WILDCARD", wild=True) == "ok"
    # a prior key still validates (section 4.2 retention)
    assert persist_check(base, ["authority.example"], pre, "example.com", ["x" * 43, tp], kid,
                         False, 0) == "ok"
    assert persist_check(base, ["authority.example"], pre, "example.com", [], kid,
                         False, 0).startswith("unauthorized")
    other = hashed_uri(pre, "example.net", tp, kid)
    assert chk("authority.example; accounturi=" + other).startswith("unauthorized")
    print("%s: self-test passed" % PERSIST_DRAFT)


def log(line):
    with open(ARGS.log, "a") as f:
        f.write(line + "\n")


def txt_values(name):
    port = ARGS.dns_account.split(":")[0]
    out = subprocess.run(["kdig", "+short", "+timeout=2", "+retry=1", "@127.0.0.1", "-p", port,
                          name, "TXT"], capture_output=True, text=True).stdout
    # one record per line, its character-strings quoted: joined (RFC 1035 3.3.14)
    return ["".join(re.findall(r'"((?:[^"\\]|\\.)*)"', v)) for v in out.splitlines()
            if v.strip()]


def txt_add(name, value):
    port, key, secret_file = ARGS.dns_account.split(":", 2)
    secret = open(secret_file).read().strip()
    script = ("server 127.0.0.1 %s\nzone test.\nupdate add %s. 1 TXT \"%s\"\nsend\n"
              % (port, name, value))
    subprocess.run(["knsupdate", "-y", "hmac-sha256:%s:%s" % (key, secret)], input=script,
                   text=True, check=True, capture_output=True)


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

    def problem(self, status, kind, detail):
        body = json.dumps({"type": "urn:ietf:params:acme:error:" + kind,
                           "detail": detail}).encode()
        self.reply(status, [("Content-Type", "application/problem+json")], body)

    def dns_account_check(self, path, jws):
        """True to forward the challenge response, False when refused."""
        with LOCK:
            ident, token, wild = CHALLENGES.get(path, (None, None, False))
        if ident is None:
            return True
        prot = b64url_json(jws["protected"])
        kid = prot.get("kid", "")
        with LOCK:
            thumbs = list(THUMBS.get(kid, []))
        thumb = thumbs[0] if thumbs else None
        want = b64url(hashlib.sha256(("%s.%s" % (token, thumb)).encode()).digest())
        if ARGS.dns_persist:
            name = "_validation-persist." + ident
            prefix = "https://%s/account-hash/" % self.headers.get("Host")
            vals = txt_values(name)
            res = [persist_check(v, [ARGS.dns_persist], prefix, ident, thumbs, kid, wild,
                                 int(time.time()) + ARGS.clock_offset) for v in vals]
            untils = [persist_until_of(v) for v, r in zip(vals, res) if r == "ok"]
            res = [r for r in res if r is not None]
            if "ok" in res:
                log("dns-persist-01 %s found" % ident)
                with LOCK:
                    if None in untils:
                        UNTIL.pop((ident, wild), None)
                    else:
                        UNTIL[(ident, wild)] = max(untils)
            else:
                word = ("missing" if not res else "expired" if "persistUntil" in res[0]
                        and res[0].startswith("unauthorized") else res[0].split(":")[0])
                log("dns-persist-01 %s %s" % (ident, word))
                detail = ("no TXT record for issuer %s at %s" % (ARGS.dns_persist, name)
                          if not res else "%s: %s" % (name, res[0]))
                kind = res[0].split(":")[0] if res else "unauthorized"
                self.problem(400 if kind == "malformed" else 403, kind, detail)
                return False
            txt_add("_acme-challenge." + ident, want)
            return True
        else:
            label = account_label(kid)
            name = "%s._acme-challenge.%s" % (label, ident)
            found = thumb is not None and want in txt_values(name)
            log("dns-account-01 %s %s %s" % (ident, label, "found" if found else "missing"))
            what = want
        if not found:
            self.problem(403, "incorrectResponse", "no TXT record \"%s\" at %s" % (what, name))
            return False
        txt_add("_acme-challenge." + ident, want)
        return True

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else None
        path = self.path.split("?")[0]
        profile = None
        jws = json.loads(body) if body and self.command == "POST" else None
        if PROFILES is not None and path == "/order-plz":
            payload = b64url_json(jws["payload"])
            profile = payload.get("profile")
            log("neworder profile=%s" % (profile if profile is not None else "-"))
            if profile is not None and profile not in PROFILES:
                self.problem(400, "invalidProfile", "profile %r is not offered" % profile)
                return
        if ARGS.dns_account and path.startswith("/chalZ/") and jws is not None:
            if not self.dns_account_check(path, jws):
                return
        status, headers, data = self.forward(body)
        hdr = dict((k.lower(), v) for k, v in headers)
        ctype = hdr.get("content-type", "")
        if ARGS.dns_account and path == "/sign-me-up" and status in (200, 201):
            jwk = b64url_json(jws["protected"]).get("jwk")
            if jwk is not None and "location" in hdr:
                with LOCK:
                    THUMBS[hdr["location"]] = [thumbprint(jwk)]
        if ARGS.dns_account and path == "/rollover-account-key" and status == 200:
            # RFC 8555 7.3.5: the inner JWS carries the new key
            inner = b64url_json(jws["payload"])
            jwk = b64url_json(inner["protected"]).get("jwk")
            kid = b64url_json(jws["protected"]).get("kid")
            if jwk is not None and kid in THUMBS:
                with LOCK:
                    THUMBS[kid].insert(0, thumbprint(jwk))
                log("keychange %s" % kid)
        if ARGS.dns_account and path.startswith("/authZ/") and status == 200:
            a = json.loads(data)
            ident = a.get("identifier", {}).get("value")
            extra = []
            for ch in a.get("challenges", []):
                if ch.get("type") == "dns-01":
                    c2 = dict(ch)
                    if ARGS.dns_persist:
                        c2["type"] = "dns-persist-01"
                        del c2["token"]
                        c2["issuerDomainNames"] = [ARGS.dns_persist]
                    else:
                        c2["type"] = "dns-account-01"
                    extra.append(c2)
                    cpath = "/" + ch["url"].split("/", 3)[3]
                    with LOCK:
                        CHALLENGES[cpath] = (ident, ch["token"], bool(a.get("wildcard")))
            a["challenges"] = extra + a.get("challenges", [])
            with LOCK:
                until = UNTIL.get((ident, bool(a.get("wildcard"))))
            if until is not None and a.get("status") == "valid":
                t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
                if a.get("expires", "9999") > t:  # RFC 3339 UTC compares as text
                    a["expires"] = t
                    log("authz %s expires clamped to %s" % (ident, t))
            data = json.dumps(a).encode()
        if ARGS.dns_persist and path == "/dir" and status == 200:
            d = json.loads(data)
            meta = d.setdefault("meta", {})
            meta["caaIdentities"] = [ARGS.dns_persist]
            meta["issuerDomainNames"] = [ARGS.dns_persist]
            meta["accountHashPrefix"] = "https://%s/account-hash/" % self.headers.get("Host")
            data = json.dumps(d).encode()
        if PROFILES is not None:
            data = self.add_profile(path, status, hdr, ctype, profile, data)
        self.reply(status, headers, data)

    def add_profile(self, path, status, hdr, ctype, profile, data):
        if path == "/dir" and status == 200:
            d = json.loads(data)
            d.setdefault("meta", {})["profiles"] = PROFILES
            return json.dumps(d).encode()
        if path == "/order-plz" and status == 201:
            oid = hdr.get("location", "").rstrip("/").rsplit("/", 1)[-1]
            with LOCK:
                ORDER_PROFILE[oid] = profile
        elif (path.startswith("/my-order/") or path.startswith("/finalize-order/")) \
                and "json" in ctype and status == 200:
            oid = path.rstrip("/").rsplit("/", 1)[-1]
            with LOCK:
                profile = ORDER_PROFILE.get(oid)
        else:
            return data
        if profile is None:
            return data
        o = json.loads(data)
        o["profile"] = profile
        return json.dumps(o).encode()

    do_GET = do_POST = do_HEAD = handle_any


def main():
    global ARGS, PROFILES, UPSTREAM
    p = argparse.ArgumentParser()
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--pebble", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--profiles")
    p.add_argument("--dns-account")
    p.add_argument("--dns-persist")
    p.add_argument("--clock-offset", type=int, default=0)
    p.add_argument("--log", required=True)
    ARGS = p.parse_args()
    PROFILES = (dict(kv.split("=", 1) for kv in ARGS.profiles.split(","))
                if ARGS.profiles else None)
    UPSTREAM = ssl.create_default_context(cafile=ARGS.ca)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.listen), Proxy)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ext proxy on 127.0.0.1:%d -> pebble :%d" % (ARGS.listen, ARGS.pebble),
          file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
