#!/usr/bin/env bash
# loadtest/limits.sh — what a rate-limit refusal costs, against a forwarded request.
#
# One fast nginx backend (loadtest/overhead/backend-nginx.conf.tmpl: four ports, a fixed
# ~300 B answer) and two Sluice gateways in front of it (2 workers, pinned): "plain" without
# limits, "limited" with three tenants, `open` (no limit), `capped` (1 request a minute, so
# after the first every request is a 429) and `metered` (a token limit too high to refuse:
# every request is read, estimated, charged and settled with the answer's usage). wrk drives
# the same ~1 KB chat request (loadtest/overhead/post.lua) in interleaved rounds:
#   plain      no admission at all (the baseline)
#   forwarded  through "limited" as tenant open: admitted, forwarded, answered
#   refused    through "limited" as tenant capped: answered 429 by the gateway
#   metered    through "limited" as tenant metered: token accounting on every request
# and prints median req/s, p99 and the gateway's CPU per 1,000 requests for each, and the
# ratios refused/forwarded, forwarded/plain and metered/forwarded. Everything binds to
# 127.0.0.1.
#
# Usage: loadtest/limits.sh [--help]
# Environment: DURATION=8 (s per run), ROUNDS=3, CONNECTIONS=64, NO_BUILD=1 (use
#   .build/release/sluice as is), REDIS=HOST:PORT (the limited gateway keeps its counters in
#   that redis-server: `limits.backend: redis://`, so each decision is a round trip)
# Requirements: wrk nginx curl python3 (apt-get install -y wrk nginx curl python3)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-8} ROUNDS=${ROUNDS:-3} CONNECTIONS=${CONNECTIONS:-64}
die() { printf '[limits] ERROR: %s\n' "$*" >&2; exit 1; }
find_tool() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }
WRK=$(find_tool wrk); NGINX=$(find_tool nginx); CURL=$(find_tool curl)
[[ -n $WRK && -n $NGINX && -n $CURL ]] || die "needs wrk nginx curl: apt-get install -y wrk nginx curl"
[[ ${NO_BUILD:-0} == 1 ]] || swift build -c release --product sluice >&2
SLUICE=$ROOT/.build/release/sluice
[[ -x $SLUICE ]] || die "missing $SLUICE"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-limits.XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
read -r B1 B2 B3 B4 P_PLAIN A_PLAIN P_LIM A_LIM <<<"$(python3 -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
USER_DIRECTIVE=""; [[ $EUID -eq 0 ]] && USER_DIRECTIVE="user root root;"
mkdir -p "$WORK/backend"
sed -e "s|@DIR@|$WORK/backend|g" -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" -e "s|@B4@|$B4|g" \
    -e "s|@USER_DIRECTIVE@|$USER_DIRECTIVE|g" loadtest/overhead/backend-nginx.conf.tmpl >"$WORK/backend/nginx.conf"
"$NGINX" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=($!)
printf 'sk-open\n' >"$WORK/open.keys"; printf 'sk-capped\n' >"$WORK/capped.keys"; printf 'sk-metered\n' >"$WORK/metered.keys"
gateway() {  # gateway PORT ADMIN LIMITS-YAML
    cat <<EOF
listen: "127.0.0.1:$1"
workers: 2
pin_workers: true
admin: { listen: "127.0.0.1:$2" }
log_level: warning
pools:
  - name: bench
    match: { paths: ["/*"] }
    replicas: ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3", "127.0.0.1:$B4"]
$3
EOF
}
gateway "$P_PLAIN" "$A_PLAIN" "" >"$WORK/plain.yaml"
BACKEND=""; [[ -n ${REDIS:-} ]] && BACKEND="
  backend: redis://$REDIS
  backend_timeout: 50ms"
gateway "$P_LIM" "$A_LIM" "limits:$BACKEND
  tenants:
    - { name: open, keys_file: $WORK/open.keys }
    - { name: capped, keys_file: $WORK/capped.keys, requests_per_minute: 1, burst: 1 }
    - { name: metered, keys_file: $WORK/metered.keys, tokens_per_minute: 1000000000000 }" >"$WORK/limited.yaml"
"$SLUICE" serve --config "$WORK/plain.yaml" >"$WORK/plain.log" 2>&1 & PLAIN_PID=$!; PIDS+=($PLAIN_PID)
"$SLUICE" serve --config "$WORK/limited.yaml" >"$WORK/limited.log" 2>&1 & LIM_PID=$!; PIDS+=($LIM_PID)
for a in "$A_PLAIN" "$A_LIM"; do
    for _ in $(seq 1 100); do "$CURL" -sf "http://127.0.0.1:$a/readyz" >/dev/null && break; sleep 0.05; done
done
BODY=$(sed -n 's/^wrk.body = \[\[\(.*\)\]\]$/\1/p' loadtest/overhead/post.lua)
[[ $("$CURL" -s -o /dev/null -w '%{http_code}' -H 'authorization: Bearer sk-capped' -d "$BODY" "http://127.0.0.1:$P_LIM/v1/chat/completions") == 200 ]] || die "first capped request not admitted"
[[ $("$CURL" -s -o /dev/null -w '%{http_code}' -H 'authorization: Bearer sk-capped' -d "$BODY" "http://127.0.0.1:$P_LIM/v1/chat/completions") == 429 ]] || die "second capped request not refused"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {  # run NAME PORT PID KEY -> appends a JSON line
    local header=() t0 t1
    [[ -n $4 ]] && header=(-H "authorization: Bearer $4")
    "$WRK" -t1 -c"$CONNECTIONS" -d2s -s loadtest/overhead/post.lua "${header[@]}" "http://127.0.0.1:$2/v1/chat/completions" >/dev/null
    t0=$(ticks "$3")
    "$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s loadtest/overhead/post.lua "${header[@]}" "http://127.0.0.1:$2/v1/chat/completions" >"$WORK/wrk.out"
    t1=$(ticks "$3")
    python3 - "$1" "$((t1 - t0))" "$(getconf CLK_TCK)" "$WORK/wrk.out" >>"$WORK/runs.jsonl" <<'PYEOF'
import json, re, sys
name, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
text = open(sys.argv[4]).read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(json.dumps({"name": name, "rps": rps, "p99_ms": float(p99.group(1)) * scale,
                  "cpu_ms_per_1k": 1000 * ticks / hz / requests * 1000, "non2xx": int(non2xx.group(1)) if non2xx else 0}))
PYEOF
}
for round in $(seq 1 "$ROUNDS"); do
    run plain "$P_PLAIN" "$PLAIN_PID" ""
    run forwarded "$P_LIM" "$LIM_PID" sk-open
    run refused "$P_LIM" "$LIM_PID" sk-capped
    run metered "$P_LIM" "$LIM_PID" sk-metered
done
python3 - "$WORK/runs.jsonl" "$DURATION" "$ROUNDS" "$CONNECTIONS" "${REDIS:-}" <<'PYEOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
med = lambda name, key: statistics.median(r[key] for r in runs if r["name"] == name)
print(f"`loadtest/limits.sh` (DURATION={sys.argv[2]}, ROUNDS={sys.argv[3]}, CONNECTIONS={sys.argv[4]}{', REDIS=' + sys.argv[5] if sys.argv[5] else ''}; medians)\n")
print("| run | req/s | p99 ms | gateway CPU ms / 1k req | non-2xx |")
print("|---|---|---|---|---|")
for name in ["plain", "forwarded", "refused", "metered"]:
    print(f"| {name} | {med(name, 'rps'):.0f} | {med(name, 'p99_ms'):.2f} | {med(name, 'cpu_ms_per_1k'):.1f} | {int(med(name, 'non2xx'))} |")
print(f"\nrefused / forwarded: {med('refused', 'rps') / med('forwarded', 'rps'):.2f}x req/s, "
      f"{med('refused', 'cpu_ms_per_1k') / med('forwarded', 'cpu_ms_per_1k'):.2f}x CPU per request")
print(f"forwarded / plain (the cost of admission on an admitted request): {med('forwarded', 'rps') / med('plain', 'rps'):.2f}x req/s, "
      f"{med('forwarded', 'cpu_ms_per_1k') / med('plain', 'cpu_ms_per_1k'):.2f}x CPU per request")
print(f"metered / forwarded (the cost of token accounting): {med('metered', 'rps') / med('forwarded', 'rps'):.2f}x req/s, "
      f"{med('metered', 'cpu_ms_per_1k') / med('forwarded', 'cpu_ms_per_1k'):.2f}x CPU per request")
PYEOF
