#!/usr/bin/env bash
# Runs the toml-test suite against a decoder (toml-test's decoder protocol:
# TOML on stdin, tagged JSON on stdout, non-zero exit on invalid input).
#   toml_test.sh DECODER TESTS_DIR
# Every case named in TESTS_DIR/files-toml-1.0.0 runs: valid/X.toml must
# decode to what valid/X.json says (compared by toml-test-compare, built next
# to the decoder, the way toml-test compares), invalid/X.toml must be
# rejected with a message and without crashing. Prints every failure and a
# summary line; exits non-zero on any failure.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 DECODER TESTS_DIR" >&2
    exit 2
fi
decoder=$1
tests=$2
compare=${TOML_TEST_COMPARE:-$(dirname "$decoder")/toml-test-compare}
list=$tests/files-toml-1.0.0

for f in "$decoder" "$compare"; do
    if [ ! -x "$f" ]; then
        echo "toml-test: $f is not an executable" >&2
        exit 2
    fi
done
if [ ! -f "$list" ]; then
    echo "toml-test: $list not found" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
i=0
: >"$tmp/batch"
while IFS= read -r name || [ -n "$name" ]; do
    case $name in
    *.toml) ;;
    *) continue ;;
    esac
    file=$tests/$name
    case $name in
    valid/*)
        # decoded now, compared below in a single toml-test-compare run
        i=$((i + 1))
        if "$decoder" <"$file" >"$tmp/$i.json" 2>"$tmp/err"; then
            printf '%s\t%s\t%s\n' "$name" "${file%.toml}.json" "$tmp/$i.json" >>"$tmp/batch"
        else
            failed=$((failed + 1))
            echo "FAIL $name: rejected valid input: $(head -c 300 "$tmp/err")"
        fi
        ;;
    invalid/*)
        "$decoder" <"$file" >/dev/null 2>"$tmp/err"
        rc=$?
        if [ "$rc" -eq 0 ]; then
            failed=$((failed + 1))
            echo "FAIL $name: accepted invalid input"
        elif [ "$rc" -gt 2 ]; then
            failed=$((failed + 1))
            echo "FAIL $name: decoder crashed or misbehaved (exit $rc): $(head -c 300 "$tmp/err")"
        elif [ ! -s "$tmp/err" ]; then
            failed=$((failed + 1))
            echo "FAIL $name: rejected without an error message"
        else
            passed=$((passed + 1))
        fi
        ;;
    esac
done <"$list"

if [ -s "$tmp/batch" ]; then
    "$compare" --batch <"$tmp/batch" >"$tmp/results"
    compared=$(wc -l <"$tmp/batch")
    ok=$(grep -c '^ok ' "$tmp/results")
    grep '^FAIL ' "$tmp/results"
    passed=$((passed + ok))
    failed=$((failed + compared - ok))
fi

echo "toml-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
