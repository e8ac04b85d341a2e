#!/usr/bin/env bash
# Errors carry their root cause (issue 11): a CA whose HTTPS certificate is
# not trusted, a CA port where nothing listens, and a CA that wants its terms
# of service agreed. The run summary, `status` and the signed `failed` event
# say "TLS: unable to get local issuer certificate for 127.0.0.1:PORT",
# "connection refused by 127.0.0.1:PORT" and point at agree_tos, instead of
# "HTTP transport failure".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tw_init rootcause
tw_start || exit 1

# (a) no `trust`: Pebble's HTTPS certificate comes from an unknown CA
tw_config_head 4 | grep -v '^trust = ' >"$TW/notrust.toml"
tw_config_cert tls ec-p256 tls.test >>"$TW/notrust.toml"
timeout 60 "$CERTLOOP" run --once -c "$TW/notrust.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "untrusted CA: exit $rc, expected 1"
want="TLS: unable to get local issuer certificate for 127.0.0.1:$TW_ACME_PORT"
grep -q "^tls: failed: .*$want" "$TW/out.txt" || tw_fail "untrusted CA: summary: $(cat "$TW/out.txt")"
grep -q "HTTP transport failure" "$TW/out.txt" && tw_fail "untrusted CA: summary still says HTTP transport failure"

# (b) a CA port where nothing listens
dead=$(tw_port)
tw_config_head 4 | sed "s|^directory = .*|directory = \"https://127.0.0.1:$dead/dir\"|" >"$TW/dead.toml"
tw_config_cert dead ec-p256 dead.test >>"$TW/dead.toml"
timeout 60 "$CERTLOOP" run --once -c "$TW/dead.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "dead CA: exit $rc, expected 1"
grep -q "^dead: failed: .*connection refused by 127.0.0.1:$dead" "$TW/out.txt" ||
  tw_fail "dead CA: summary: $(cat "$TW/out.txt")"

# (c) agree_tos = false: Pebble answers agreementRequired
tw_config_head 4 | sed 's/^agree_tos = true/agree_tos = false/' >"$TW/tos.toml"
tw_config_cert tos ec-p256 tos.test >>"$TW/tos.toml"
timeout 60 "$CERTLOOP" run --once -c "$TW/tos.toml" >"$TW/out.txt" 2>"$TW/err.txt"
rc=$?
[ "$rc" = 1 ] || tw_fail "agree_tos: exit $rc, expected 1"
grep -q "^tos: failed: .*agreementRequired.*set agree_tos = true in \[ca.pebble\] ($TW/tos.toml:[0-9]*)" \
  "$TW/out.txt" || tw_fail "agree_tos: summary: $(cat "$TW/out.txt")"

# (d) the daemon: status and the signed failed event carry the same reason
tw_receiver_start || { tw_fail "webhook receiver did not start"; tw_done; }
{
  tw_config_head 4 | grep -v '^trust = '
  cat <<EOT
[notify.ops]
url = "http://127.0.0.1:$TW_RECEIVER_PORT/hook"
secret_file = "$TW/webhook.secret"
events = ["failed"]

EOT
  tw_config_cert tls ec-p256 tls.test
} >"$TW/daemon.toml"
rm -rf "$TW/state"
mkdir -p "$TW/state"
failed_event() { grep -q '"event": *"failed"' "$TW/received" 2>/dev/null; }
tw_daemon_start "$TW/daemon.toml" "$TW/d.out" "$TW/d.err" 30 failed_event ||
  tw_fail "no failed event: $(cat "$TW/received")"
grep '"event": *"failed"' "$TW/received" | head -1 | grep -qF "$want" ||
  tw_fail "failed event lacks the reason: $(cat "$TW/received")"
"$CERTLOOP" status -c "$TW/daemon.toml" >"$TW/status.txt" 2>&1
grep -qF "$want" "$TW/status.txt" || tw_fail "status lacks the reason: $(cat "$TW/status.txt")"
tw_daemon_stop >/dev/null
tw_done
