#!/usr/bin/env bash
# Notifications people read: [notify.NAME] type = "email" (SMTP through
# libcurl: STARTTLS with the test CA, AUTH with a password file, from/to)
# and type = "slack" (an incoming-webhook message), through the same
# outbox as the webhooks. A local SMTP sink (tests/support/smtp_sink.py)
# refuses the first message with 451: `run --once` issues, Slack gets its
# message, the email stays in STATE/outbox/; a daemon started afterwards
# delivers it (at least once) and the outbox ends empty. check refuses an
# email target without from/to and a slack target with secret_file.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
SRC=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tw_init notifymail
tw_start || exit 1

python3 "$SRC/tests/support/smtp_sink.py" --port-file "$TW/smtp.port" --cert "$TW/tls.pem" \
  --key "$TW/tls.key" --user certloop --password 's3cret pass' --fail 1 \
  >"$TW/mail.jsonl" 2>"$TW/smtp.log" &
TW_PIDS+=($!)
recv=${BUILD_DIR:-build}/webhook-receiver
"$recv" --port-file "$TW/slack.port" >"$TW/slack.jsonl" 2>"$TW/slack.log" &
TW_PIDS+=($!)
# (a python3 start takes seconds on a loaded machine)
sinks_up() { [ -s "$TW/smtp.port" ] && [ -s "$TW/slack.port" ]; }
tw_wait 30 sinks_up
SPORT=$(cat "$TW/smtp.port") && RPORT=$(cat "$TW/slack.port") ||
  { tw_fail "SMTP sink or receiver did not start"; tw_done; }
printf 's3cret pass\n' >"$TW/smtp.pass"
chmod 600 "$TW/smtp.pass"

{
  tw_config_head 4
  cat <<EOT
[notify.mail]
type = "email"
server = "smtp://localhost:$SPORT"
trust = "$TW/tls-ca.pem"
username = "certloop"
password_file = "$TW/smtp.pass"
from = "certloop@example.org"
to = ["ops@example.org", "oncall@example.org"]
events = ["issued", "failed"]

[notify.chat]
type = "slack"
url = "http://127.0.0.1:$RPORT/services/T000/B000/XXXX"
events = ["issued"]

EOT
  tw_config_cert mail ec-p256 mail.test
} >"$TW/certloop.toml"
"$CERTLOOP" check -c "$TW/certloop.toml" >"$TW/check.txt" 2>&1 ||
  { tw_fail "config invalid: $(cat "$TW/check.txt")"; tw_done; }

timeout 120 "$CERTLOOP" run --once -c "$TW/certloop.toml" >"$TW/once.out" 2>"$TW/once.err" ||
  tw_fail "run --once failed: $(tail -3 "$TW/once.err")"
[ "$(wc -l <"$TW/slack.jsonl")" = 1 ] || tw_fail "slack: $(wc -l <"$TW/slack.jsonl") messages, expected 1"
python3 - "$(head -1 "$TW/slack.jsonl")" <<'PY' || tw_fail "slack message: $(cat "$TW/slack.jsonl")"
import json, sys
r = json.loads(sys.argv[1])
assert r["status"] == 200, r
t = r["body"]["text"]
assert t.startswith("*certloop: mail issued*\n"), t
assert "Names: mail.test" in t and "Valid until: " in t, t
PY
[ -s "$TW/mail.jsonl" ] && tw_fail "an email was accepted although the sink refused it"
n=$(find "$TW/state/outbox" -maxdepth 1 -name '*.json' | wc -l)
[ "$n" = 1 ] || tw_fail "expected the refused email in the outbox, found $n deliveries"
grep -q "target=mail .*attempt 1 failed: SMTP server localhost:$SPORT answered 451" "$TW/once.err" ||
  tw_fail "the refusal is not logged with its SMTP reply"

# the daemon sends it again after the backoff
has_mail() { [ -s "$TW/mail.jsonl" ]; }
tw_daemon_start "$TW/certloop.toml" "$TW/d.out" "$TW/d.err" 60 has_mail ||
  tw_fail "no email delivered by the daemon: $(grep -i 'mail' "$TW/d.err" | tail -3)"
outbox_empty() { [ "$(find "$TW/state/outbox" -maxdepth 1 -name '*.json' | wc -l)" = 0 ]; }
tw_daemon_wait 10 outbox_empty || tw_fail "the outbox is not empty after delivery"
tw_daemon_stop >/dev/null
python3 - "$(head -1 "$TW/mail.jsonl")" <<'PY' || tw_fail "email: $(cat "$TW/mail.jsonl")"
import json, sys
r = json.loads(sys.argv[1])
assert r["tls"] is True and r["auth"] == "certloop", r
assert r["from"] == "certloop@example.org", r
assert r["to"] == ["ops@example.org", "oncall@example.org"], r
head, _, body = r["data"].partition("\n\n")
h = dict(l.split(": ", 1) for l in head.split("\n"))
assert h["Subject"] == "certloop: mail issued", h
assert h["From"] == "certloop@example.org", h
assert h["To"] == "ops@example.org, oncall@example.org", h
assert h["X-Certloop-Event"] == "issued" and h["Message-ID"] == "<%s@certloop>" % h["X-Certloop-Delivery"], h
assert "Certificate mail issued." in body and "Names: mail.test" in body, body
PY
[ "$(wc -l <"$TW/slack.jsonl")" = 1 ] || tw_fail "slack got the event again"

# check refuses what cannot work
cat >"$TW/bad.toml" <<EOT
[ca.x]
directory = "https://127.0.0.1:1/dir"
[notify.m]
type = "email"
server = "http://mail.example.org"
[notify.s]
type = "slack"
url = "https://hooks.slack.com/services/x"
secret_file = "$TW/smtp.pass"
EOT
"$CERTLOOP" check -c "$TW/bad.toml" >"$TW/check.txt" 2>&1
rc=$?
[ "$rc" = 78 ] || tw_fail "bad notify config: check exit $rc"
for want in "notify.m.server: \"http://mail.example.org\" is not smtp://HOST" \
  "notify.m: missing required key 'from'" "notify.m: missing required key 'to'" \
  "notify.s: 'secret_file' does not apply to type = \"slack\""; do
  grep -qF "$want" "$TW/check.txt" || tw_fail "check does not say: $want ($(cat "$TW/check.txt"))"
done
tw_done
