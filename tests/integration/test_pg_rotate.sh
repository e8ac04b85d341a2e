#!/usr/bin/env bash
# The PostgreSQL store's private keys at rest (issue 14 item 2): after
# `run --once` issued certificates into a real PostgreSQL, a pg_dump of the
# database holds the certificates but no private key (no PEM "PRIVATE KEY",
# not a line of a deployed key's base64); `certloop store rotate-key` seals
# every key again with a new key in one go (the key id in every blob
# changes), a second run skips them all, a third key as --old-key-file
# changes nothing (exit 1); the daemon then opens every key with the new
# key and none with the old one; the file store and the same key are refused.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"

cl() {
  "$CERTLOOP" "$@" >"$TW/o" 2>"$TW/e"
  rc=$?
}
# the key ids (bytes 5..12 of each sealed blob) in use, sorted, one line
key_ids() {
  pg_sql "SELECT string_agg(DISTINCT encode(substring(key_sealed FROM 5 FOR 8), 'hex'), ' ')
          FROM (SELECT key_sealed FROM certloop_generations
                UNION ALL SELECT key_sealed FROM certloop_accounts) k"
}

tw_init pgrotate
pg_start || exit 1
tw_start || exit 1
{
  tw_config_head 8
  pg_store_config web-1
  tw_config_cert c0 ec-p256 c0.test
  tw_config_cert c1 rsa2048 c1.test www.c1.test
} >"$TW/a.toml"
timeout 120 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/out1" 2>"$TW/err1" ||
  { tw_fail "run --once failed"; tail -20 "$TW/err1" >&2; }
tw_check_deployed c0
tw_check_deployed c1

echo "== pg_dump holds the certificates, not their keys"
pg_dump -d "$PG_CONNINFO" >"$TW/dump.sql" || tw_fail "pg_dump failed"
[ "$(grep -c 'BEGIN CERTIFICATE' "$TW/dump.sql")" -ge 2 ] || tw_fail "the dump holds no certificates"
grep -q 'PRIVATE KEY' "$TW/dump.sql" && tw_fail "the dump holds a PEM private key"
for c in c0 c1; do
  line=$(sed -n 2p "$TW/out/$c/key.pem")
  [ ${#line} -ge 40 ] || tw_fail "$c: no key line to look for"
  grep -qF -- "$line" "$TW/dump.sql" && tw_fail "the dump holds $c's key material"
done
[ "$(pg_sql "SELECT count(*) FROM certloop_generations")" = 2 ] || tw_fail "not 2 generations"

echo "== rotate-key"
before=$(key_ids)
[ "$(echo "$before" | wc -w)" = 1 ] || tw_fail "keys sealed with several keys before rotation: $before"
openssl rand -hex 32 >"$TW/new.key"
# a new key others may read is refused before anything is sealed with it
# (check refuses it as encryption_key_file; rotate-key used it)
chmod 644 "$TW/new.key"
cl store rotate-key --new-key-file "$TW/new.key" -c "$TW/a.toml"
[ "$rc" = 78 ] || tw_fail "a world-readable new key: exit $rc, expected 78"
grep -q "new.key: encryption key: the file is accessible by others (mode 0644)" "$TW/e" ||
  tw_fail "no word on the world-readable key: $(cat "$TW/e")"
[ "$(key_ids)" = "$before" ] || tw_fail "a refused rotation changed the keys"
chmod 600 "$TW/new.key"
cl store rotate-key --new-key-file "$TW/new.key" -c "$TW/a.toml"
[ "$rc" = 0 ] || { tw_fail "rotate-key: exit $rc"; cat "$TW/e" >&2; }
[ "$(cat "$TW/o")" = 3 ] || tw_fail "rotate-key resealed $(cat "$TW/o") keys, expected 3 (2 certificates, 1 account)"
after=$(key_ids)
[ "$(echo "$after" | wc -w)" = 1 ] && [ "$after" != "$before" ] ||
  tw_fail "key ids after rotation: '$after' (before: '$before')"
grep -q 'PRIVATE KEY' <<<"$(pg_dump -d "$PG_CONNINFO")" && tw_fail "the dump after rotation holds a PEM private key"

# again: everything is under the new key already
cl store rotate-key --new-key-file "$TW/new.key" -c "$TW/a.toml"
[ "$rc" = 0 ] && [ "$(cat "$TW/o")" = 0 ] || tw_fail "a second rotation: exit $rc, $(cat "$TW/o") resealed"
# a third key is not what the keys are sealed with: nothing changes
openssl rand -hex 32 >"$TW/third.key"
chmod 600 "$TW/third.key"
cl store rotate-key --old-key-file "$TW/third.key" --new-key-file "$TW/pg.key" -c "$TW/a.toml"
[ "$rc" = 1 ] || tw_fail "rotation from a wrong old key: exit $rc, expected 1"
grep -q "opens with neither" "$TW/e" || tw_fail "no word on the key that opens with neither"
[ "$(key_ids)" = "$after" ] || tw_fail "a failed rotation changed the keys"
cl store rotate-key --new-key-file "$TW/new.key" --old-key-file "$TW/new.key" -c "$TW/a.toml"
[ "$rc" = 78 ] || tw_fail "the same key twice: exit $rc, expected 78"
cl store rotate-key -c "$TW/a.toml"
[ "$rc" = 64 ] || tw_fail "no --new-key-file: exit $rc, expected 64"

echo "== the daemon on the old key, then on the new one"
# (the old key opens nothing: the run says so at once, orders nothing and
# fails; it used to wait for ever for "another instance" to renew)
orders=$(grep -c "POST /order-plz" "$TW/pebble.log")
rc=0
timeout 60 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/out2" 2>"$TW/err2" || rc=$?
grep -q "sealed with another encryption key" "$TW/err2" ||
  tw_fail "the old key still opens the rotated keys"
[ "$rc" = 1 ] || tw_fail "run --once on the old key: exit $rc, expected 1 (124: it hung)"
grep -q "^c0: failed: its stored private key cannot be opened with \[store\] encryption_key_file" "$TW/out2" ||
  { tw_fail "run --once on the old key: no failure naming the key file"; cat "$TW/out2" >&2; }
[ "$(grep -c "POST /order-plz" "$TW/pebble.log")" = "$orders" ] || tw_fail "the old key made a run order again"
sed -i "s|^encryption_key_file = .*|encryption_key_file = \"$TW/new.key\"|" "$TW/a.toml"
cl check -c "$TW/a.toml"
[ "$rc" = 0 ] || { tw_fail "check with the new key: exit $rc"; cat "$TW/e" >&2; }
timeout 60 "$CERTLOOP" run --once -c "$TW/a.toml" >"$TW/out3" 2>"$TW/err3" ||
  { tw_fail "run --once with the new key failed"; tail -5 "$TW/err3" >&2; }
grep -qE "sealed with another encryption key|does not authenticate" "$TW/err3" &&
  tw_fail "the new key does not open every key"
grep -q '^c0: ok, valid until' "$TW/out3" || tw_fail "c0 not ok with the new key"
[ "$(grep -c "POST /order-plz" "$TW/pebble.log")" = 2 ] || tw_fail "a run after the rotation ordered again"

echo "== refused: the file store"
{
  tw_config_head 8
  tw_config_cert c0 ec-p256 c0.test
} >"$TW/files.toml"
cl store rotate-key --new-key-file "$TW/new.key" -c "$TW/files.toml"
[ "$rc" = 78 ] || tw_fail "rotate-key on the file store: exit $rc, expected 78"
grep -q 'rotate-key is for \[store\] type = "postgresql"' "$TW/e" || tw_fail "no word on the file store"
tw_done
