#!/usr/bin/env bash
# cw-dns-testserver (the DNS transport over a fixed zone, dns/test_zone_main.cc) with real
# clients: dig and kdig over UDP and TCP (kdig lowercases names, so the case echo is checked
# with dig, and with unbound's 0x20 randomisation), unbound forwarding to it as CoreDNS would (a
# forward-zone, as in NOTES.md) and as a stub-zone doing QNAME minimisation, and hostile
# packets (garbage, compression loops, bad TCP frames, idle and surplus connections).
# Loopback only; ports come from the OS; only the processes started here are stopped.
# Usage: dns_server_test.sh TESTSERVER_BINARY
set -u
server_bin=$1
for tool in dig kdig unbound unbound-checkconf socat python3 od; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77
  fi
done

tmp=$(mktemp -d /tmp/cw-dnstest-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

. "$(dirname "$0")/../lib/check.sh"
# expect_all NAME PATTERN... -- COMMAND...: the output matches every PATTERN (grep -E),
# whatever the exit status (dig reports NXDOMAIN and REFUSED with status 0 anyway).
expect_all() {
  local name=$1; shift
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  shift
  local out; out=$("$@" 2>&1)
  for p in "${patterns[@]}"; do
    if ! grep -qE -- "$p" <<<"$out"; then bad "$name (no /$p/)" "$out"; return; fi
  done
  ok "$name"
}
# reject NAME PATTERN -- COMMAND...: the output does not match PATTERN.
reject() {
  local name=$1 pattern=$2; shift 3
  local out; out=$("$@" 2>&1)
  if grep -qE -- "$pattern" <<<"$out"; then bad "$name (has /$pattern/)" "$out"; else ok "$name"; fi
}

# start_server NAME ARGS...: starts the test server, sets $port.
start_server() {
  local name=$1; shift
  "$server_bin" --ready-file "$tmp/$name.ready" "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/$name.ready" ] && break; sleep 0.05; done
  if [ ! -s "$tmp/$name.ready" ]; then
    echo "FAIL: the DNS test server did not start"; cat "$tmp/$name.log"; exit 1
  fi
  port=$(cat "$tmp/$name.ready")
}

start_server main --threads 2 --tcp-idle-timeout-ms 1500 --log-queries
P=$port
srv_pid=${pids[-1]}
D=(dig @127.0.0.1 -p "$P" +time=2 +tries=1)
K=(kdig @127.0.0.1 -p "$P" +time=2 +retry=0)
W=web.default.svc.clusterset.local
B=big.default.svc.clusterset.local

# --- dig and kdig, UDP and TCP
for t in notcp tcp; do
  expect_all "dig +$t A: authoritative answer, no recursion offered" \
    'status: NOERROR' 'flags: qr aa rd;' "^$W\.\s+5\s+IN\s+A\s+10\.96\.0\.10$" -- "${D[@]}" +$t $W A
  expect_all "kdig +$t A" 'status: NOERROR' 'Flags: qr aa rd;' "10\.96\.0\.10" -- "${K[@]}" +$t $W A
  expect_all "dig +$t TXT dns-version" '"1\.0\.0"' -- "${D[@]}" +$t dns-version.clusterset.local TXT
  expect_all "kdig +$t TXT dns-version" '"1\.0\.0"' -- "${K[@]}" +$t dns-version.clusterset.local TXT
  expect_all "dig +$t SOA at the apex" 'status: NOERROR' \
    'IN\s+SOA\s+ns\.dns\.clusterset\.local\. hostmaster\.clusterset\.local\. 1 7200 1800 86400 5' \
    -- "${D[@]}" +$t clusterset.local SOA
  expect_all "dig +$t NS at the apex, address in additional" 'IN\s+NS\s+ns\.dns\.clusterset\.local\.' \
    '^ns\.dns\.clusterset\.local\.\s+5\s+IN\s+A\s+10\.96\.0\.53' \
    -- "${D[@]}" +$t clusterset.local NS
  expect_all "dig +$t NXDOMAIN with the SOA in authority" 'status: NXDOMAIN' 'flags: qr aa' \
    'AUTHORITY: 1' 'AUTHORITY SECTION:' 'clusterset\.local\.\s+5\s+IN\s+SOA' \
    -- "${D[@]}" +$t nope.default.svc.clusterset.local A
  expect_all "kdig +$t NXDOMAIN" 'status: NXDOMAIN' 'SOA' -- "${K[@]}" +$t nope.clusterset.local A
  expect_all "dig +$t NODATA (a name without that type)" 'status: NOERROR' 'ANSWER: 0, AUTHORITY: 1' \
    -- "${D[@]}" +$t $W TXT
  expect_all "dig +$t REFUSED outside the zone, not authoritative" 'status: REFUSED' 'flags: qr rd;' \
    -- "${D[@]}" +$t example.com A
  expect_all "dig +$t keeps the question's case" 'status: NOERROR' \
    '^;WeB\.DeFaUlT\.svc\.clusterset\.local\.\s+IN\s+A$' '10\.96\.0\.10' \
    -- "${D[@]}" +$t WeB.DeFaUlT.svc.clusterset.local
done
for ent in svc.clusterset.local default.svc.clusterset.local dns.clusterset.local; do
  expect_all "empty non-terminal $ent is NOERROR/NODATA" 'status: NOERROR' 'ANSWER: 0, AUTHORITY: 1' \
    -- "${D[@]}" $ent A
done
expect_all "EDNS: we advertise 1232" 'EDNS: version: 0, flags:; udp: 1232' -- "${D[@]}" +bufsize=4096 $W
reject "no EDNS asked, none given" 'OPT PSEUDOSECTION' -- "${D[@]}" +noedns $W
expect_all "EDNS: DO is copied" 'EDNS: version: 0, flags: do; udp: 1232' -- "${D[@]}" +dnssec $W
expect_all "EDNS version 1 is BADVERS" 'status: BADVERS' -- "${D[@]}" +edns=1 +noednsneg $W
expect_all "opcode NOTIFY is NOTIMP" 'status: NOTIMP' -- "${D[@]}" +opcode=notify $W
expect_all "class CH is REFUSED" 'status: REFUSED' -- "${D[@]}" CH TXT version.bind
expect_all "dig AXFR fails" 'Transfer failed' -- "${D[@]}" AXFR clusterset.local
expect_all "kdig AXFR is REFUSED" "REFUSED" -- "${K[@]}" AXFR clusterset.local

# --- truncation: 100 A records are 1,661 bytes
expect_all "dig UDP, EDNS 1232: TC, within 1232" 'flags: qr aa tc rd;' \
  'MSG SIZE +rcvd: (1[01][0-9][0-9]|12[0-2][0-9]|123[0-2])$' \
  -- "${D[@]}" +notcp +ignore $B
expect_all "dig UDP, no EDNS: TC, within 512" 'flags: qr aa tc rd;' \
  'MSG SIZE +rcvd: ([0-4][0-9][0-9]|50[0-9]|51[0-2])$' \
  -- "${D[@]}" +notcp +ignore +noedns $B
expect_all "dig over TCP: the whole answer" 'flags: qr aa rd;' 'ANSWER: 100,' -- "${D[@]}" +tcp $B
expect_all "dig retries over TCP after TC" 'Truncated, retrying in TCP mode' 'ANSWER: 100,' \
  -- "${D[@]}" $B
expect_all "kdig UDP: TC" 'Flags: qr aa tc rd;' -- "${K[@]}" +notcp +ignore $B
expect_all "kdig over TCP: the whole answer" 'ANSWER: 100;' -- "${K[@]}" +tcp $B

# --- TCP: several queries per connection, pipelining, limits
expect_all "kdig +keepopen: three queries, one connection" \
  "$W\..*10\.96\.0\.10" '"1\.0\.0"' 'status: NXDOMAIN' \
  -- "${K[@]}" +tcp +keepopen $W A dns-version.clusterset.local TXT nope.clusterset.local A

cat >"$tmp/probe.py" <<'PY'
# Raw DNS over UDP and TCP, for what dig and kdig will not send.
import random, socket, struct, sys, time

HOST = "127.0.0.1"

def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".") if l) + b"\0"

def query(qid, qname="web.default.svc.clusterset.local", qtype=1):
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + name(qname) + struct.pack(">HH", qtype, 1)

def frame(m):
    return struct.pack(">H", len(m)) + m

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b

def read_frame(s):
    h = recv_exact(s, 2)
    return None if h is None else recv_exact(s, struct.unpack(">H", h)[0])

def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False

def udp_ask(port, payload, timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(payload, (HOST, port))
    try:
        return s.recv(65535)
    except socket.timeout:
        return None

def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "pipeline":
        # 50 queries in one write; 50 answers, in order, each its own id.
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(b"".join(frame(query(1000 + i)) for i in range(50)))
        ids = []
        for _ in range(50):
            m = read_frame(s)
            if m is None:
                print("connection closed early"); return 1
            ids.append(struct.unpack(">H", m[:2])[0])
        print("ok" if ids == list(range(1000, 1050)) else "ids %s" % ids)
    elif cmd == "split":
        # One query written a byte at a time still gets its answer.
        s = socket.create_connection((HOST, port), timeout=5)
        for b in frame(query(77)):
            s.send(bytes([b])); time.sleep(0.002)
        m = read_frame(s)
        print("ok" if m and m[:2] == b"\0\x4d" else "bad %r" % m)
    elif cmd == "idle":
        # A connection that sends nothing is closed after the idle timeout (1.5 s here).
        s = socket.create_connection((HOST, port), timeout=5)
        t = time.time()
        closed = closed_within(s, 5)
        print("closed after %.1fs" % (time.time() - t) if closed else "still open")
    elif cmd == "half-frame":
        # A frame that never completes is closed by the same timeout.
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(b"\0\x30abc")
        print("closed" if closed_within(s, 5) else "still open")
    elif cmd in ("zero-frame", "huge-frame"):
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(b"\0\0" if cmd == "zero-frame" else b"\xff\xff" + b"x" * 100)
        print("closed" if closed_within(s, 2) else "still open")
    elif cmd == "maxconn":
        # Three connections allowed: the fourth is closed at once; once one goes, room again.
        held = []
        for i in range(3):
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(frame(query(i)))
            if read_frame(s) is None:
                print("connection %d not served" % i); return 1
            held.append(s)
        extra = socket.create_connection((HOST, port), timeout=5)
        if not closed_within(extra, 2):
            print("a fourth connection was kept"); return 1
        held.pop().close()
        time.sleep(0.3)
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(frame(query(9)))
        print("ok" if read_frame(s) else "no room after a close")
    elif cmd == "loop":
        # A question whose name points at itself: FORMERR, with the id.
        header = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0)
        m = udp_ask(port, header + b"\xc0\x0c\0\x01\0\x01")
        good = m and m[:2] == b"\x51\x51" and m[3] & 0xF == 1 and m[2] & 0x80
        print("ok" if good else "bad %r" % m)
    elif cmd == "response":
        # A message with QR set is never answered (no reflection loops).
        q = bytearray(query(0x6262)); q[2] |= 0x80
        print("ok" if udp_ask(port, bytes(q), 0.5) is None else "answered a response")
    elif cmd == "flood":
        # Random bytes and damaged queries over UDP and TCP.
        rnd = random.Random(7)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3000):
            q = bytearray(query(i))
            for _ in range(rnd.randint(1, 6)):
                q[rnd.randrange(len(q))] = rnd.randrange(256)
            noise = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 600)))
            data = bytes(q) if i % 2 else noise
            u.sendto(data, (HOST, port))
        for i in range(50):
            try:
                s = socket.create_connection((HOST, port), timeout=2)
                s.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 3000))))
                s.close()
            except OSError:
                pass
        print("ok")
    return 0

sys.exit(main())
PY
probe() { python3 "$tmp/probe.py" "$@"; }
expect_all "TCP pipelining: 50 queries in one write, 50 answers in order" '^ok$' -- probe pipeline "$P"
expect_all "TCP: a query written byte by byte" '^ok$' -- probe split "$P"
expect_all "TCP: an idle connection is closed after the timeout" '^closed after (1\.[4-9]|2\.[0-9])s$' \
  -- probe idle "$P"
expect_all "TCP: an unfinished frame is closed after the timeout" '^closed$' -- probe half-frame "$P"
expect_all "TCP: a zero-length frame closes the connection" '^closed$' -- probe zero-frame "$P"
expect_all "TCP: a frame over the size limit closes the connection" '^closed$' -- probe huge-frame "$P"

start_server limited --threads 1 --max-tcp-connections 3
expect_all "TCP: the connection limit holds, and frees up" '^ok$' -- probe maxconn "$port"

# --- hostile packets
expect_all "UDP compression loop: FORMERR with the id" '^ok$' -- probe loop "$P"
expect_all "UDP message with QR set: no answer" '^ok$' -- probe response "$P"
reject "socat: 7 bytes of garbage get no answer" '.' -- \
  sh -c "printf 'garbage' | socat -t 0.5 - UDP:127.0.0.1:$P | od -An -tx1"
# id abcd, RD, one question whose name is a pointer to itself (offset 12), type A, class IN
loop_packet='\253\315\001\000\000\001\000\000\000\000\000\000\300\014\000\001\000\001'
expect_all "socat: compression loop gets FORMERR" '^ *ab cd 81 01' -- \
  sh -c "printf '$loop_packet' | socat -t 1 - UDP:127.0.0.1:$P | od -An -tx1"
expect_all "flood of damaged packets over UDP and TCP" '^ok$' -- probe flood "$P"
sleep 0.2
expect_all "still answering after all that (UDP)" '10\.96\.0\.10' -- "${D[@]}" +short $W
expect_all "still answering after all that (TCP)" '10\.96\.0\.10' -- "${D[@]}" +tcp +short $W
if kill -0 "$srv_pid" 2>/dev/null; then
  ok "the server process is alive"
else
  bad "the server process died" "$(tail -5 "$tmp/main.log")"
fi

# --- unbound in front, as CoreDNS's forward plugin would be
# start_unbound NAME ZONE_BLOCK: unbound on loopback with the given zone clause; sets $uport.
start_unbound() {
  local name=$1 block=$2
  uport=$(free_port)
  mkdir -p "$tmp/$name"
  unbound_conf "$tmp/$name" "$uport" "$block
forward-zone:
  name: \".\"
  forward-addr: 127.0.0.1@$P" >"$tmp/$name/unbound.conf"
  if ! out=$(unbound-checkconf "$tmp/$name/unbound.conf" 2>&1); then
    bad "unbound-checkconf $name" "$out"; return 1
  fi
  unbound -d -c "$tmp/$name/unbound.conf" >"$tmp/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    dig @127.0.0.1 -p "$uport" +time=1 +tries=1 . NS >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  bad "unbound $name did not start" "$(cat "$tmp/$name/log")"; return 1
}

U() { dig @127.0.0.1 -p "$uport" +time=3 +tries=1 "$@"; }
if start_unbound forward "forward-zone:
  name: \"clusterset.local.\"
  forward-addr: 127.0.0.1@$P"; then
  expect_all "unbound forward-zone: A" 'status: NOERROR' "10\.96\.0\.10" -- U $W A
  expect_all "unbound forward-zone: TXT" '"1\.0\.0"' -- U dns-version.clusterset.local TXT
  expect_all "unbound forward-zone: NXDOMAIN" 'status: NXDOMAIN' \
    -- U nope.default.svc.clusterset.local A
  expect_all "unbound forward-zone: a truncated answer is fetched over TCP" 'ANSWER: 100,' -- U $B A
fi

marker=$(wc -l <"$tmp/main.log")
if start_unbound stub "  qname-minimisation: yes
  use-caps-for-id: yes
stub-zone:
  name: \"clusterset.local.\"
  stub-addr: 127.0.0.1@$P"; then
  expect_all "unbound stub-zone (QNAME minimisation, 0x20 case): A" 'status: NOERROR' \
    "10\.96\.0\.10" -- U $W A
  asked=$(tail -n +"$((marker + 1))" "$tmp/main.log" | grep '^query')
  expect_all "QNAME minimisation asked svc.clusterset.local: NOERROR" \
    '^query svc\.clusterset\.local\. [0-9]+ noerror' -- echo "${asked,,}"
  expect_all "QNAME minimisation asked default.svc.clusterset.local: NOERROR" \
    '^query default\.svc\.clusterset\.local\. [0-9]+ noerror' -- echo "${asked,,}"
  reject "no NXDOMAIN on the way down" 'NXDOMAIN' -- echo "$asked"
  expect_all "unbound stub-zone: NXDOMAIN below an empty non-terminal" 'status: NXDOMAIN' \
    -- U nope.default.svc.clusterset.local A
fi

finish
