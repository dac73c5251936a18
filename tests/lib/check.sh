# Shared by the shell tests: source it, then report each check with ok/bad and end with
# finish, which prints the counts and exits non-zero if any check failed.
#
#   ok "what held"
#   bad "what did not" ["detail line" ...]     # details are indented under the failure
#   wait_for SECONDS 'shell condition'          # polls every 50 ms; status 0 once it holds
#   port=$(free_port)                           # a free TCP port on 127.0.0.1 (racy, as all are)
#   expect NAME PATTERN -- COMMAND...           # it succeeds and its output matches PATTERN
#   refuse NAME PATTERN -- COMMAND...           # it fails and its output matches PATTERN
#   unbound_conf DIR PORT CLAUSES >FILE         # unbound on 127.0.0.1@PORT as CoreDNS's forward
#                                               # plugin would be (NOTES.md), then CLAUSES
#   finish
passed=0 failed=0
ok()  { echo "ok   $1"; passed=$((passed + 1)); }
bad() {
  echo "FAIL $1"; shift
  [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/  | /'
  failed=$((failed + 1))
}
wait_for() {
  local i
  for i in $(seq $(($1 * 20))); do
    eval "$2" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
expect() {
  local name=$1 pattern=$2; shift 3
  local out; out=$("$@" 2>&1); local rc=$?
  if [ $rc -eq 0 ] && grep -qE -- "$pattern" <<<"$out"; then ok "$name"; else bad "$name (exit $rc)" "$out"; fi
}
refuse() {
  local name=$1 pattern=$2; shift 3
  local out; out=$("$@" 2>&1); local rc=$?
  if [ $rc -ne 0 ] && grep -qE -- "$pattern" <<<"$out"; then ok "$name"; else bad "$name (exit $rc)" "$out"; fi
}
unbound_conf() {
  cat <<EOF
server:
  interface: 127.0.0.1@$2
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$1"
  pidfile: ""
  use-syslog: no
  logfile: ""
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  domain-insecure: "clusterset.local."
$3
remote-control:
  control-enable: no
EOF
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}
