#!/usr/bin/env bash
# The test command: sets up what the tests need (a virtualenv with the official openai client),
# builds once, runs every test, then checks the shipped configs and the demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SLUICE_VENV:-.venv}
if ! "$VENV/bin/python" -c 'import openai' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet openai
fi
export SLUICE_PYTHON="$PWD/$VENV/bin/python"

swift build --build-tests
swift test --skip-build

# Every shipped config validates.
for config in configs/*.yaml; do
    .build/debug/sluice check --config "$config"
done

# The demo starts, serves a streamed completion through the gateway, and stops on its own.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
.build/debug/sluice demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 --duration 4 >"$log" 2>&1 &
demo=$!
url=""
for _ in $(seq 1 100); do
    url=$(grep -o 'gateway http://[0-9.:]*' "$log" | head -1 | cut -d' ' -f2 || true)
    [ -n "$url" ] && break
    sleep 0.05
done
[ -n "$url" ] || { cat "$log"; echo "demo did not start"; exit 1; }
curl -sfN "$url/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"sim-7b","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}' | grep -q 'data: \[DONE\]'
wait "$demo"
grep -q "Sluice demo stopped." "$log" || { cat "$log"; echo "demo did not stop cleanly"; exit 1; }
echo "scripts/test.sh: all tests passed"
