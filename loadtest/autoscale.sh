#!/usr/bin/env bash
# loadtest/autoscale.sh — the closed loop: Sluice's scale decision followed by a local actuator.
#
# Starts two simulated replicas (PROFILE, default configs/replicas/routing-bench.yaml: an A100
# engine at real speed), `sluice serve` in front of them with `scaling` on the pool (TTFT p95
# objective TARGET), and drives SCENARIO (default chat-surge) with `sluice-load --autoscale`:
# the actuator starts replicas of the same profile when the decision asks for more (each joins
# the pool STARTUP_DELAY seconds after it starts, like a pod passing its readiness probe) and
# drains and stops them when it asks for fewer. Then prints, from the report:
#   - when the surge began, when the first scale-out decision came, and when the client's
#     per-second TTFT p95 was back under the target (for 5 s running);
#   - what an HPA on CPU, KEDA on the request backlog and an oracle would have done with the
#     same arrivals and the same replica caps (MIN_REPLICAS..MAX_REPLICAS, as the pool's
#     scaling block), simulated with their documented rules (loadtest/autoscale_compare.py).
# The report and chart (p95 vs target, desired vs replicas) are in loadtest/out/autoscale-*/.
#
# Usage: loadtest/autoscale.sh [--help]
# Environment: SCENARIO=loadtest/scenarios/chat-surge.yaml, PROFILE=..., TARGET=500ms,
#   STARTUP_DELAY=5, DURATION_SCALE=1, SCALE_DOWN_DELAY=30s, STABLE_WINDOW=30s, NO_BUILD=1,
#   BUILD=release
# Requirements: python3 curl
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SCENARIO=${SCENARIO:-loadtest/scenarios/chat-surge.yaml}
PROFILE=${PROFILE:-configs/replicas/routing-bench.yaml}
TARGET=${TARGET:-500ms}
STARTUP_DELAY=${STARTUP_DELAY:-5}
DURATION_SCALE=${DURATION_SCALE:-1}
SCALE_DOWN_DELAY=${SCALE_DOWN_DELAY:-30s}
STABLE_WINDOW=${STABLE_WINDOW:-30s}
BUILD=${BUILD:-release}
MIN_REPLICAS=2 MAX_REPLICAS=10  # the pool's caps, given to the simulated peers too
die() { printf '[autoscale] ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '[autoscale] %s\n' "$*" >&2; }
command -v curl >/dev/null || die "needs curl"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    for product in sluice sluice-replica sluice-load; do swift build -c "$BUILD" --product "$product" >&2; done
fi
BIN=$ROOT/.build/$BUILD
for b in sluice sluice-replica sluice-load; do [[ -x $BIN/$b ]] || die "missing $BIN/$b"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-autoscale.XXXXXX")
OUT=$ROOT/loadtest/out/autoscale-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
read -r R1 R2 P A <<<"$(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
for i in 1 2; do
    port=R$i
    "$BIN/sluice-replica" --port "${!port}" --id "r$i" --profile "$PROFILE" >"$WORK/r$i.log" 2>&1 &
    PIDS+=($!)
done
cat >"$WORK/sluice.yaml" <<EOF
listen: "127.0.0.1:$P"
admin: { listen: "127.0.0.1:$A" }
log_level: info
pools:
  - name: fleet
    match: { paths: ["/*"] }
    replicas: ["127.0.0.1:$R1", "127.0.0.1:$R2"]
    routing: { policy: least-queue, scrape: { interval: 500ms } }
    scaling:
      signal: ttft
      target_p95: $TARGET
      min_replicas: $MIN_REPLICAS
      max_replicas: $MAX_REPLICAS
      stable_window: $STABLE_WINDOW
      panic_window: 6s
      scale_down_delay: $SCALE_DOWN_DELAY
      max_step_up: 4
      tick: 2s
EOF
"$BIN/sluice" serve --config "$WORK/sluice.yaml" >"$WORK/sluice.log" 2>&1 &
PIDS+=($!)
for url in "http://127.0.0.1:$R1/health" "http://127.0.0.1:$R2/health" "http://127.0.0.1:$A/healthz"; do
    for _ in $(seq 1 100); do curl -sf "$url" >/dev/null && break; sleep 0.1; done
done
log "gateway 127.0.0.1:$P (admin $A), replicas $R1 $R2; running $SCENARIO"
"$BIN/sluice-load" run "$SCENARIO" --target "http://127.0.0.1:$P" --admin "http://127.0.0.1:$A" --out "$OUT" \
    --duration-scale "$DURATION_SCALE" --autoscale fleet --replica-profile "$PROFILE" --startup-delay "$STARTUP_DELAY" --quiet \
    >"$OUT/sluice-load.txt" 2>"$OUT/autoscale-events.txt" || die "sluice-load failed (see $OUT)"
grep -E "scale decision" "$WORK/sluice.log" >"$OUT/decisions.log" || true
python3 loadtest/autoscale_compare.py "$OUT/report.json" "$SCENARIO" "$DURATION_SCALE" "$TARGET" "$STARTUP_DELAY" \
    "$MIN_REPLICAS" "$MAX_REPLICAS" | tee "$OUT/summary.md"
log "report: $OUT/report.json  chart: $OUT/report.svg"
