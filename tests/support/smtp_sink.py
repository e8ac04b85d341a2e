#!/usr/bin/env python3
"""A small SMTP sink for integration tests (RFC 5321 subset, loopback only).

smtp_sink.py --port-file F [--cert PEM --key PEM] [--user U --password P]
             [--fail N]

Speaks EHLO/HELO, STARTTLS (with --cert/--key), AUTH PLAIN and LOGIN
(only after STARTTLS when a certificate is given), MAIL, RCPT, DATA, RSET,
NOOP and QUIT. With --user, MAIL is refused (530) until AUTH succeeded.
--fail N answers 451 (try again later) to the first N messages after their
DATA. Every message accepted is one JSON line on stdout:
{"from", "to": [...], "tls": bool, "auth": user or null, "data": text}.
"""
import argparse
import base64
import json
import socket
import socketserver
import ssl
import sys
import threading

lock = threading.Lock()
state = {"fail": 0}


class Handler(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(65536)
        if not line:
            raise EOFError
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def handle(self):
        self.tls = False
        self.auth = None
        self.reset()
        self.send("220 localhost certloop test sink")
        try:
            while True:
                line = self.readline()
                if not self.command(line):
                    return
        except (EOFError, ConnectionError, ssl.SSLError):
            return

    def reset(self):
        self.mail_from = None
        self.rcpt = []

    def command(self, line):
        verb = line.split(" ", 1)[0].upper()
        arg = line[len(verb):].strip()
        opts = self.server.opts
        if verb in ("EHLO", "HELO"):
            caps = ["250-localhost"]
            if opts.cert and not self.tls:
                caps.append("250-STARTTLS")
            if opts.user and (self.tls or not opts.cert):
                caps.append("250-AUTH PLAIN LOGIN")
            caps.append("250 8BITMIME")
            for c in caps:
                self.send(c)
        elif verb == "STARTTLS" and opts.cert and not self.tls:
            self.send("220 go ahead")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(opts.cert, opts.key)
            conn = ctx.wrap_socket(self.connection, server_side=True)
            self.connection = conn
            self.rfile = conn.makefile("rb")
            self.wfile = conn.makefile("wb")
            self.tls = True
            self.reset()
        elif verb == "AUTH" and opts.user:
            parts = arg.split()
            mech = parts[0].upper() if parts else ""
            if mech == "PLAIN":
                blob = parts[1] if len(parts) > 1 else None
                if blob is None:
                    self.send("334 ")
                    blob = self.readline()
                fields = base64.b64decode(blob).split(b"\0")
                user, pw = fields[-2].decode(), fields[-1].decode()
            elif mech == "LOGIN":
                self.send("334 VXNlcm5hbWU6")
                user = base64.b64decode(self.readline()).decode()
                self.send("334 UGFzc3dvcmQ6")
                pw = base64.b64decode(self.readline()).decode()
            else:
                self.send("504 unknown mechanism")
                return True
            if user == opts.user and pw == opts.password:
                self.auth = user
                self.send("235 authenticated")
            else:
                self.send("535 authentication failed")
        elif verb == "MAIL":
            if opts.user and self.auth is None:
                self.send("530 authentication required")
            else:
                self.mail_from = arg.split(":", 1)[1].strip().strip("<>").split(">")[0]
                self.rcpt = []
                self.send("250 ok")
        elif verb == "RCPT":
            if self.mail_from is None:
                self.send("503 MAIL first")
            else:
                self.rcpt.append(arg.split(":", 1)[1].strip().strip("<>").split(">")[0])
                self.send("250 ok")
        elif verb == "DATA":
            if not self.rcpt:
                self.send("503 RCPT first")
                return True
            self.send("354 end with .")
            lines = []
            while True:
                line = self.readline()
                if line == ".":
                    break
                lines.append(line[1:] if line.startswith(".") else line)
            with lock:
                fail = state["fail"] < opts.fail
                state["fail"] += 1
            if fail:
                self.send("451 try again later")
            else:
                rec = {"from": self.mail_from, "to": self.rcpt, "tls": self.tls,
                       "auth": self.auth, "data": "\n".join(lines)}
                with lock:
                    sys.stdout.write(json.dumps(rec) + "\n")
                    sys.stdout.flush()
                self.send("250 queued")
            self.reset()
        elif verb == "RSET":
            self.reset()
            self.send("250 ok")
        elif verb == "NOOP":
            self.send("250 ok")
        elif verb == "QUIT":
            self.send("221 bye")
            return False
        else:
            self.send("502 not implemented")
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--fail", type=int, default=0)
    opts = p.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.opts = opts
    with open(opts.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(opts.port_file + ".tmp", opts.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
