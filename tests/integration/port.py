#!/usr/bin/env python3
"""A loopback port for one test world, free for TCP and UDP.

usage: port.py [-n COUNT] OWNER_DIR [HOST ...]   (HOSTs default to 127.0.0.1)
       (-n: COUNT distinct ports, one a line, from one python3 start: on a
       loaded machine each start took 2-3 s)

Ports handed out by bind(port 0) come from the kernel's ephemeral range,
which is also where every outgoing connection (curl, libpq, Pebble's
validation requests) gets its local port: between the moment a test picks
such a port and the moment its server binds it, another test's client can
take it ("bind: address already in use" under ctest -j12). So ports come
from below the ephemeral range, and each is reserved in a directory shared
by the worlds running at once: RESERVED/PORT holds the owner's directory;
a reservation whose owner directory is gone is taken back. The owner
releases its reservations with --release OWNER_DIR.
"""
import os
import random
import socket
import sys

RESERVED = os.path.join(os.environ.get("TMPDIR", "/tmp"), "certloop-ports")


def span():
    lo, hi = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        pass
    if lo - 1 >= 12000:
        return 10000, lo - 1
    if 65535 - hi >= 2000:
        return hi + 1, 65535
    return 1024, 65535  # no room outside the range: the reservation still helps


def owner_of(path):
    try:
        with open(os.path.join(path, "owner")) as f:
            return f.read().strip()
    except OSError:
        return None


def reserve(port, owner):
    path = os.path.join(RESERVED, str(port))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        held = owner_of(path)
        if held is None or os.path.isdir(held):
            return False  # being written, or its world is alive
        try:  # the world that held it is gone: take it back
            os.unlink(os.path.join(path, "owner"))
            os.rmdir(path)
            os.mkdir(path, 0o700)
        except OSError:
            return False
    tmp = os.path.join(path, "owner.tmp")
    with open(tmp, "w") as f:
        f.write(owner + "\n")
    os.rename(tmp, os.path.join(path, "owner"))
    return True


def release(port):
    path = os.path.join(RESERVED, str(port))
    for name in ("owner", "owner.tmp"):
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def bindable(port, hosts):
    socks = []
    try:
        for host in hosts:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--release":
        owner = os.path.realpath(sys.argv[2])
        if os.path.isdir(RESERVED):
            for name in os.listdir(RESERVED):
                if owner_of(os.path.join(RESERVED, name)) == owner:
                    release(name)
        return 0
    args = sys.argv[1:]
    count = 1
    if len(args) >= 2 and args[0] == "-n":
        count = int(args[1])
        args = args[2:]
    if not args or count < 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    owner = os.path.realpath(args[0])
    hosts = args[1:] or ["127.0.0.1"]
    os.makedirs(RESERVED, 0o700, exist_ok=True)
    lo, hi = span()
    got = []
    for _ in range(2000 * count):
        port = random.randint(lo, hi)
        if port in got or not reserve(port, owner):
            continue
        if bindable(port, hosts):
            got.append(port)
            if len(got) == count:
                print("\n".join(str(p) for p in got))
                return 0
            continue
        release(port)
    print("port.py: no %d free ports in %d-%d" % (count, lo, hi), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
