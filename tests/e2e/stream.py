#!/usr/bin/env python3
"""A long TCP stream across clusters, for failover tests: connects to an echo server, sends a
numbered line every INTERVAL seconds for DURATION seconds, and reads every echo back. Prints
"sent N echoed M" and exits 0 only if every line came back in order on the one connection
(a reset, a timeout of 10 s or a wrong echo fail it)."""
import socket
import sys
import time

host, port, duration, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection((host, port), timeout=10)
s.settimeout(10)
sent = echoed = 0
buf = b""
end = time.time() + duration
try:
    while time.time() < end:
        s.sendall(b"line %d\n" % sent)
        sent += 1
        deadline = time.time() + interval
        s.settimeout(0.001)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by the server")
                buf += chunk
        except (BlockingIOError, socket.timeout):
            pass
        time.sleep(max(0, deadline - time.time()))
    s.settimeout(10)
    s.shutdown(socket.SHUT_WR)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
except Exception as e:  # a reset or a timeout: the stream broke
    lines = buf.decode(errors="replace").splitlines()
    print(f"sent {sent} echoed {len(lines)} BROKEN: {e!r}")
    sys.exit(1)
lines = buf.decode(errors="replace").splitlines()
good = lines == [f"line {i}" for i in range(sent)]
print(f"sent {sent} echoed {len(lines)}" + ("" if good else " OUT OF ORDER OR MISSING"))
sys.exit(0 if good else 1)
