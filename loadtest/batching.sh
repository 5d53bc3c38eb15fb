#!/usr/bin/env bash
# loadtest/batching.sh — what gateway batching buys: the highest open-loop rate whose p95 stays
# under TARGET_MS, for single-row V2 infer requests (loadtest/scenarios/infer-sweep.yaml) through
# Sluice in front of two Seldon MLServer replicas (scikit-learn, Tests/python/mlserver_fleet.py):
#   plain      Sluice without batching, MLServer without batching
#   batching   Sluice with batching (max_batch 64, max_wait 2ms, target_latency TARGET_MS / 2)
#   mlserver   Sluice without batching, MLServer's own adaptive batching (32, 5 ms)
# For each (on a fresh fleet), the rate rises through RATES (requests/s, 8 s each, a fresh gateway
# per rate, the fleet idle again before each) until a rate fails: p95 over TARGET_MS, any error,
# or under 90% of the rate served. Also prints the added latency of batching at
# low load (p50/p95 at the lowest rate, batching vs plain). Everything on 127.0.0.1.
#
# FLEET=replica runs the same sweep on two sluice-replica processes (configs/replicas/llm-8b-a100.yaml:
# embeddings at 2 ms + 0.5 ms per input per device batch) with single-input /v1/embeddings requests
# (loadtest/scenarios/embeddings-sweep.yaml), for plain and batching (there is no server-side
# adaptive batching to compare with).
#
# Usage: loadtest/batching.sh [--help]
# Environment: RATES="100 400 800 1200 1600 2000 2400 3200 4000", TARGET_MS=50, FLEET=mlserver|replica,
#   CONFIGS="plain batching mlserver" (a subset), PYTHON=.venv/bin/python
#   (with mlserver, mlserver-sklearn), NO_BUILD=1, BUILD=release
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RATES=${RATES:-"100 400 800 1200 1600 2000 2400 3200 4000"}
TARGET_MS=${TARGET_MS:-50}
PYTHON=${PYTHON:-.venv/bin/python}
BUILD=${BUILD:-release}
FLEET=${FLEET:-mlserver}
die() { printf '[batching] ERROR: %s\n' "$*" >&2; exit 1; }
"$PYTHON" -c 'import mlserver, mlserver_sklearn' 2>/dev/null || die "$PYTHON needs mlserver and mlserver-sklearn (scripts/test.sh installs them in .venv)"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    for product in sluice sluice-load sluice-replica; do swift build -c "$BUILD" --product "$product" >&2; done
fi
BIN=$ROOT/.build/$BUILD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-batching.XXXXXX")
OUT=$ROOT/loadtest/out/batching-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
GATEWAY=""
REPLICA_PIDS=()
cleanup() {
    [[ -n $GATEWAY ]] && kill "$GATEWAY" 2>/dev/null || true
    for config in plain batching mlserver; do "$PYTHON" Tests/python/mlserver_fleet.py stop "$WORK/$config" 2>/dev/null || true; done
    [[ ${#REPLICA_PIDS[@]} -gt 0 ]] && kill "${REPLICA_PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
read -r P A <<<"$("$PYTHON" -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"

gateway() {  # gateway NAME REPLICA-PORTS... ; starts sluice serve (batching when NAME is batching)
    local name=$1; shift
    local replicas="" port
    for port in "$@"; do replicas+="\"127.0.0.1:$port\", "; done
    local batching=""
    [[ $name == batching ]] && batching="    batching: { max_batch: 64, max_wait: 2ms, target_latency: $((TARGET_MS / 2))ms }"
    cat >"$WORK/sluice.yaml" <<YAML
listen: "127.0.0.1:$P"
admin: { listen: "127.0.0.1:$A" }
log_level: warning
pools:
  - name: fleet
    match: { paths: ["/v2/*", "/v1/*"] }
    replicas: [${replicas%, }]
    routing: { policy: least-queue }
$batching
YAML
    "$BIN/sluice" serve --config "$WORK/sluice.yaml" >"$WORK/sluice.log" 2>&1 &
    GATEWAY=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$A/healthz" >/dev/null && break; sleep 0.05; done
    kill -0 "$GATEWAY" 2>/dev/null || die "the gateway did not start: $(tail -3 "$WORK/sluice.log")"
}

# Idle again: a probe answers within 50 ms (an overloaded replica keeps working through its own
# queue after the load stops; the next run must not inherit that).
probe() {  # probe PORT -> seconds one small request took
    if [[ $FLEET == replica ]]; then
        curl -s -o /dev/null -w '%{time_total}' -H 'content-type: application/json' -d '{"model":"sim-7b","input":"probe"}' \
            "http://127.0.0.1:$1/v1/embeddings" || echo 9
    else
        curl -s -o /dev/null -w '%{time_total}' -H 'content-type: application/json' \
            -d '{"inputs":[{"name":"x","shape":[1,8],"datatype":"FP64","data":[0,0,0,0,0,0,0,0]}]}' \
            "http://127.0.0.1:$1/v2/models/clf/infer" || echo 9
    fi
}
drained() {
    local port
    for port in "$@"; do
        for _ in $(seq 1 300); do
            t=$(probe "$port")
            awk "BEGIN { exit !($t < 0.05) }" && break
            sleep 0.2
        done
    done
}
start_fleet() {  # start_fleet CONFIG -> FLEET_PORTS
    FLEET_PORTS=()
    if [[ $FLEET == replica ]]; then
        REPLICA_PIDS=()
        for i in 1 2; do
            port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            "$BIN/sluice-replica" --port "$port" --id "r$i" --profile configs/replicas/llm-8b-a100.yaml >"$WORK/replica-$i.log" 2>&1 &
            REPLICA_PIDS+=($!)
            FLEET_PORTS+=("$port")
        done
        for port in "${FLEET_PORTS[@]}"; do
            for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
        done
    else
        local flags=""; [[ $1 == mlserver ]] && flags="--adaptive"
        read -r -a FLEET_PORTS <<<"$("$PYTHON" Tests/python/mlserver_fleet.py start "$WORK/$1" 2 $flags | tr '\n' ' ')"
    fi
}
stop_fleet() {  # stop_fleet CONFIG
    if [[ $FLEET == replica ]]; then
        kill "${REPLICA_PIDS[@]}" 2>/dev/null || true; wait "${REPLICA_PIDS[@]}" 2>/dev/null || true
    else
        "$PYTHON" Tests/python/mlserver_fleet.py stop "$WORK/$1"
    fi
}

SCENARIO=loadtest/scenarios/infer-sweep.yaml DEFAULT_CONFIGS="plain batching mlserver"
if [[ $FLEET == replica ]]; then DEFAULT_CONFIGS="plain batching"; SCENARIO=loadtest/scenarios/embeddings-sweep.yaml; fi
CONFIGS=${CONFIGS:-$DEFAULT_CONFIGS}
for config in $CONFIGS; do
    # A fresh fleet per configuration; the sweep stops at the first rate that fails.
    start_fleet "$config"
    for rate in $RATES; do
        drained "${FLEET_PORTS[@]}"
        gateway "$config" "${FLEET_PORTS[@]}"
        scale=$(awk "BEGIN { print $rate / 100 }")
        "$BIN/sluice-load" run "$SCENARIO" --target "http://127.0.0.1:$P" --rate-scale "$scale" \
            --out "$OUT/$config-$rate" --quiet >/dev/null 2>&1 || true
        kill "$GATEWAY" 2>/dev/null || true; wait "$GATEWAY" 2>/dev/null || true; GATEWAY=""
        cp "$WORK/sluice.log" "$OUT/$config-$rate.sluice.log" 2>/dev/null || true
        "$PYTHON" - "$OUT/$config-$rate/report.json" "$TARGET_MS" "$rate" <<'PYEOF' || break
import json, sys
report = json.load(open(sys.argv[1]))
errors = report["requests"]["failed"] + report["requests"]["error_responses"]
sys.exit(0 if errors == 0 and report["latency_ms"]["p95"] < float(sys.argv[2]) and report["throughput_rps"] >= 0.9 * float(sys.argv[3]) else 1)
PYEOF
    done
    stop_fleet "$config"
done

"$PYTHON" - "$OUT" "$TARGET_MS" "$FLEET" $RATES <<'PYEOF' | tee "$OUT/summary.md"
import json, os, sys
out, target, fleet, rates = sys.argv[1], float(sys.argv[2]), sys.argv[3], [int(r) for r in sys.argv[4:]]
def load(config, rate):
    try:
        return json.load(open(os.path.join(out, f"{config}-{rate}", "report.json")))
    except OSError:
        return None
what = "single-input /v1/embeddings, two sluice-replica (llm-8b-a100.yaml)" if fleet == "replica" else "single-row V2 infer, two MLServer 1.7 replicas with a scikit-learn forest"
print(f"`FLEET={fleet} loadtest/batching.sh` ({what}; 8 s per rate; p95 target {target:.0f} ms; x: over the target, errors, or under 90% of the rate served)\n")
print("| config (p95 ms) | " + " | ".join(f"{r}/s" for r in rates) + " | highest rate under target |")
print("|---|" + "---|" * (len(rates) + 1))
best = {}
configs = (("plain", "Sluice, no batching"), ("batching", "Sluice batching")) + ((("mlserver", "MLServer adaptive batching"),) if fleet != "replica" else ())
for config, label in configs:
    cells, passing, failed = [], 0, False
    for rate in rates:
        report = load(config, rate)
        if not report:
            cells.append("-")
            failed = True
            continue
        errors = report["requests"]["failed"] + report["requests"]["error_responses"]
        p95 = report["latency_ms"]["p95"]
        ok = errors == 0 and p95 < target and report["throughput_rps"] >= 0.9 * rate
        cells.append(f"{p95:.1f}" + ("" if ok else " x"))
        if ok and not failed:
            passing = rate
        elif not ok:
            failed = True
    best[config] = passing
    print(f"| {label} | " + " | ".join(cells) + f" | {passing}/s |")
if best["plain"]:
    line = f"\nbatching / no batching: {best['batching'] / best['plain']:.1f}x the rate"
    if "mlserver" in best:
        line += f"; batching / MLServer's adaptive batching: {best['batching'] / max(1, best['mlserver']):.1f}x"
    print(line)
low = rates[0]
plain, batched = load("plain", low), load("batching", low)
if plain and batched:
    print(f"at {low}/s (replicas mostly idle): p50 {plain['latency_ms']['p50']:.2f} -> {batched['latency_ms']['p50']:.2f} ms, "
          f"p95 {plain['latency_ms']['p95']:.2f} -> {batched['latency_ms']['p95']:.2f} ms with batching (max_wait 2 ms)")
PYEOF
