#!/usr/bin/env bash
# loadtest/prompt_size.sh — how routers handle large prompts: Sluice, sglang-router, HAProxy.
#
# One router at a time in front of four fast fake backends (loadtest/overhead's nginx: one
# worker, four ports, a ~300 B chat completion for any request), driven by `wrk -t1 -c32`
# (prompt_size/bodies.lua) with OpenAI chat bodies whose system prompt is 1, 10, 50 or 220 KB
# of text with JSON escapes (\n \" \t \u00e9; prompt_size/bodies.py), in two sets: `shared`
# (one body, every time) and `distinct` (64 bodies differing from their first bytes, in turn).
#   sluice-rr           Sluice, round-robin (the body is forwarded, never read)
#   sluice-hash-prefix  Sluice, consistent-hash, key ["prefix"]
#   sluice-cache-prefix Sluice, cache-aware, key ["prefix"]
#   sluice-hash-user    Sluice, consistent-hash, key ["body:user"]
#   baseline-*          the same with SLUICE_BASE_BIN, each right after its sluice-* row
#   sglang-cache        sglang-router, --policy cache_aware, its defaults otherwise. It probes
#                       each backend's /health, /server_info and /model_info; nginx's answer
#                       to any path (200, a chat completion) passes (the model is "unknown")
#   haproxy-rr          HAProxy, balance roundrobin (loadtest/overhead's config)
# Sluice runs 2 pinned workers, HAProxy 2 pinned threads (as in overhead.sh). Each row starts its
# router afresh, checks one POST, warms up, measures and stops it: req/s, mean and p99 latency,
# router CPU (utime+stime of its process tree) per request, req/s over sglang-router's in the
# same size and set. All on 127.0.0.1 (free ports), all stopped on exit.
#
# Usage: loadtest/prompt_size.sh [--help]
# Environment:
#   DURATION=8  WARMUP=1    seconds per measured run, of warm-up before it (0: none)
#   SIZES="1 10 50 220"     system prompts, KB;   SETS="shared distinct";   DISTINCT=64
#   ROUTERS="..."           a subset of the routers above (baseline-* follow SLUICE_BASE_BIN)
#   SLUICE_BIN=.build/release/sluice   never built here (swift build -c release --product sluice)
#   SLUICE_BASE_BIN=PATH    a second Sluice binary for the baseline-* rows: before/after in one run
#   SLUICE_VENV=.venv       where sglang-router is (pip install sglang-router==0.3.2, as
#                           loadtest/compare.sh does); without it its rows are skipped, noted
#   OUT=loadtest/out/prompt-size-<UTC stamp>   raw wrk outputs, rows.jsonl, results.md
#   SMOKE=1                 10 KB, shared, 2 s per router: the CI check
#   KEEP_TMP=1              keep the temp dir (configs, router logs)
# Requirements: apt-get install -y wrk nginx haproxy curl python3
# Exit status: 0 ok; 1 setup failure; 3 a row had non-2xx answers, socket errors or no requests.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; "") ;; *) echo "unknown argument: $1 (try --help)" >&2; exit 1 ;; esac
log() { printf '[prompt-size] %s\n' "$*" >&2; }
die() { printf '[prompt-size] ERROR: %s\n' "$*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
COMMAND=""  # for results.md: the settings given, then the script
for v in SMOKE SIZES SETS DURATION WARMUP DISTINCT ROUTERS SLUICE_BIN SLUICE_BASE_BIN SLUICE_VENV; do
    [[ -z ${!v:-} ]] || COMMAND+="$v=\"${!v}\" "
done; COMMAND+="loadtest/prompt_size.sh"
if [[ ${SMOKE:-0} == 1 ]]; then SIZES=${SIZES:-10} SETS=${SETS:-shared} DURATION=${DURATION:-2}; fi
SIZES=${SIZES:-1 10 50 220} SETS=${SETS:-shared distinct} DURATION=${DURATION:-8} WARMUP=${WARMUP:-1}
DISTINCT=${DISTINCT:-64}; for v in DURATION WARMUP DISTINCT; do [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"; done
(( DURATION > 0 && DISTINCT > 0 )) || die "DURATION and DISTINCT must be > 0"
SLUICE_BIN=$(realpath -ms -- "${SLUICE_BIN:-$ROOT/.build/release/sluice}")
SLUICE_BASE_BIN=${SLUICE_BASE_BIN:+$(realpath -ms -- "$SLUICE_BASE_BIN")}
VENV=$(realpath -ms -- "${SLUICE_VENV:-$ROOT/.venv}")
OUT=$(realpath -ms -- "${OUT:-$ROOT/loadtest/out/prompt-size-$(date -u +%Y%m%dT%H%M%SZ)}")

find_tool() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }
WRK=$(find_tool wrk) NGINX=$(find_tool nginx) HAPROXY=$(find_tool haproxy) CURL=$(find_tool curl) PYTHON=$(find_tool python3)
for t in WRK NGINX HAPROXY CURL PYTHON; do [[ -n ${!t} ]] || die "no ${t,,}: apt-get install -y wrk nginx haproxy curl python3"; done
for b in "$SLUICE_BIN" ${SLUICE_BASE_BIN:+"$SLUICE_BASE_BIN"}; do
    [[ -x $b ]] || die "no Sluice binary at $b (swift build -c release --product sluice, or set SLUICE_BIN)"; done
binary() { echo "\`$1\` (sha256 $(sha256sum "$1" | cut -c1-12))"; }  # for results.md, taken before the run
BINARIES="sluice: $(binary "$SLUICE_BIN")${SLUICE_BASE_BIN:+; baseline: $(binary "$SLUICE_BASE_BIN")}"

ROUTERS=${ROUTERS:-sluice-rr sluice-hash-prefix sluice-cache-prefix sluice-hash-user sglang-cache haproxy-rr}
SGLANG_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("sglang-router"))' 2>/dev/null || true)
RUN=()  # the rows' routers in order: baseline-* right after its sluice-*
for r in $ROUTERS; do
    case $r in
        sluice-rr|sluice-hash-prefix|sluice-cache-prefix|sluice-hash-user)
            RUN+=("$r" ${SLUICE_BASE_BIN:+"baseline-${r#sluice-}"}) ;;
        sglang-cache) [[ -n $SGLANG_VERSION ]] && RUN+=("$r") \
            || log "NOTE: no sglang-router in $VENV (pip install sglang-router==0.3.2 there, or set SLUICE_VENV): skipping its rows" ;;
        haproxy-rr) RUN+=("$r") ;;
        *) die "unknown router $r" ;;
    esac
done

# ------------------------------------------------------------ processes, cleanup ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-prompt-size.XXXXXX")
PIDS=() WRK_PID=""
proc_tree() { local c; echo "$1"; for c in $(pgrep -P "$1" 2>/dev/null || true); do proc_tree "$c"; done; }
any_alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
stop() {  # stop PID...: TERM each, then KILL whatever of their process trees is left after ~3 s
    local all=() keep=() p
    for p; do kill -0 "$p" 2>/dev/null && mapfile -t -O "${#all[@]}" all < <(proc_tree "$p"); done
    for p; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 30); do any_alive "${all[@]}" || break; sleep 0.1; done
    for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p; do wait "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do [[ " $* " == *" $p "* ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    local rc=$?; trap - EXIT INT TERM
    [[ -z $WRK_PID ]] || kill -TERM "$WRK_PID" 2>/dev/null || true
    stop "${PIDS[@]}"
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM

start() {  # start NAME CMD... -> LAST_PID; output appended to $WORK/NAME.log
    local name=$1; shift
    "$@" >>"$WORK/$name.log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID")
}
wait_http() {  # wait_http NAME PID URL [TEXT]: until URL answers 2xx (with TEXT in its body), <= 15 s
    local deadline=$(( SECONDS + 15 )) body
    while (( SECONDS < deadline )); do
        kill -0 "$2" 2>/dev/null || { tail -n 20 "$WORK/$1.log" >&2; die "$1 exited during startup"; }
        body=$("$CURL" -sf --max-time 1 "$3" 2>/dev/null) && [[ $body == *"${4:-}"* ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/$1.log" >&2 || true
    die "$1 did not come up at $3${4:+ (waiting for $4)}"
}
free_ports() {  # free_ports N: N distinct free 127.0.0.1 ports
    "$PYTHON" -c 'import socket, sys
ss = [socket.create_server(("127.0.0.1", 0)) for _ in range(int(sys.argv[1]))]
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# ------------------------------------------------------------------- backends ----
read -r B1 B2 B3 B4 <<<"$(free_ports 4)"
WORKER_URLS=("http://127.0.0.1:$B1" "http://127.0.0.1:$B2" "http://127.0.0.1:$B3" "http://127.0.0.1:$B4")
USER_DIRECTIVE="# (not root: workers keep the current user)"
[[ $EUID -ne 0 ]] || USER_DIRECTIVE="user root root;"  # workers as 'nobody' could not use the temp dir
render() {  # render TEMPLATE OUTFILE DIR PORT (loadtest/overhead's templates)
    sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@USER_DIRECTIVE@|$USER_DIRECTIVE|g" \
        -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" -e "s|@B4@|$B4|g" "$1" >"$2"
    ! grep -q '@[A-Z][A-Z0-9_]*@' "$2" || die "unrendered placeholder in $2"
}
mkdir -p "$WORK/backend" "$WORK/haproxy" "$OUT"
render "$HERE/overhead/backend-nginx.conf.tmpl" "$WORK/backend/nginx.conf" "$WORK/backend" 0
start backend "$NGINX" -p "$WORK/backend" -e "$WORK/backend/error.log" -c "$WORK/backend/nginx.conf" -g 'daemon off;'
for u in "${WORKER_URLS[@]}"; do wait_http backend "$LAST_PID" "$u/health"; done

BODY_SIZES=()  # for results.md: "10 KB shared: 10378 B"
for size in $SIZES; do
    [[ $size =~ ^[0-9]+$ ]] || die "SIZES must be whole numbers of KB (got '$size')"
    for set in $SETS; do
        case $set in shared) n=1 first=0 ;; distinct) n=$DISTINCT first=1 ;; *) die "unknown set $set" ;; esac
        bytes=$("$PYTHON" "$HERE/prompt_size/bodies.py" "$WORK/bodies/$size-$set" "$size" "$n" "$first")
        BODY_SIZES+=("$size KB $set: $(tr ' ' '\n' <<<"$bytes" | sort -n | sed -n '1p;$p' | uniq | paste -sd- -) B")
    done
done

# -------------------------------------------------------------------- routers ----
start_router() {  # start_router NAME -> ROUTER_PID, URL
    local name=$1 port admin bin=$SLUICE_BIN routing
    read -r port admin <<<"$(free_ports 2)"
    URL="http://127.0.0.1:$port"
    case $name in
        sluice-*|baseline-*)
            [[ $name == sluice-* ]] || bin=$SLUICE_BASE_BIN
            case ${name#*-} in
                rr) routing='{ policy: round-robin }' ;;
                hash-prefix) routing='{ policy: consistent-hash, key: ["prefix"] }' ;;
                cache-prefix) routing='{ policy: cache-aware, key: ["prefix"] }' ;;
                hash-user) routing='{ policy: consistent-hash, key: ["body:user"] }' ;;
            esac
            cat >"$WORK/$name.yaml" <<EOF
listen: "127.0.0.1:$port"
workers: 2
pin_workers: true
admin: { listen: "127.0.0.1:$admin" }
log_level: warning
shutdown: { grace: 1s }
pools:
  - name: bench
    match: { paths: ["/v1/chat/completions"] }
    replicas: ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3", "127.0.0.1:$B4"]
    routing: $routing
EOF
            start "$name" "$bin" serve --config "$WORK/$name.yaml"
            wait_http "$name" "$LAST_PID" "http://127.0.0.1:$admin/readyz" ;;
        sglang-cache)  # /readiness counts the workers it has probed and found healthy
            start "$name" env HF_ENDPOINT=http://127.0.0.1:9 "$VENV/bin/python" -m sglang_router.launch_router \
                --host 127.0.0.1 --port "$port" --worker-urls "${WORKER_URLS[@]}" --policy cache_aware \
                --prometheus-host 127.0.0.1 --prometheus-port "$admin" --log-level warn
            wait_http "$name" "$LAST_PID" "$URL/readiness" '"healthy_workers":4,' ;;
        haproxy-rr)
            render "$HERE/overhead/haproxy.cfg.tmpl" "$WORK/haproxy/haproxy.cfg" "$WORK/haproxy" "$port"
            start "$name" "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg"
            wait_http "$name" "$LAST_PID" "$URL/health" ;;
    esac
    ROUTER_PID=$LAST_PID
}

# -------------------------------------------------------------------- measure ----
CLK_TCK=$(getconf CLK_TCK)
tree_cpu_ticks() {  # utime+stime (clock ticks) of PID and its descendants; after "pid (comm) ",
    local p           # utime and stime (fields 14, 15) are the 12th and 13th
    for p in $(proc_tree "$1"); do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || true; done \
        | awk '{ t += $12 + $13 } END { print t + 0 }'
}
run_wrk() {  # run_wrk OUTFILE SECONDS DIR COUNT: in the background, so a signal stops it at once
    local rc=0
    "$WRK" -t1 -c32 -d"$2s" --timeout 10s --latency -s "$HERE/prompt_size/bodies.lua" \
        "$URL/v1/chat/completions" -- "$3" "$4" >"$1" 2>&1 &
    WRK_PID=$!; wait "$WRK_PID" || rc=$?; WRK_PID=""
    (( rc == 0 )) || { cat "$1" >&2; die "wrk failed against $URL"; }
}
run_row() {  # run_row SIZE SET ROUTER: one measured row into $OUT/rows.jsonl
    local dir="$WORK/bodies/$1-$2" raw="$OUT/$1KB-$2-$3.wrk.txt" n code c0 c1
    n=$(find "$dir" -name '*.json' | wc -l)
    start_router "$3"
    code=$("$CURL" -s -o "$WORK/answer" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
        --data-binary "@$dir/0.json" "$URL/v1/chat/completions" || true)
    if [[ $code != 200 ]] || ! grep -q '"chat.completion"' "$WORK/answer"; then
        tail -n 20 "$WORK/$3.log" >&2; head -c 300 "$WORK/answer" >&2 || true
        die "$3: the test POST ($1 KB) got HTTP '$code', not 200 with a chat completion"
    fi
    (( WARMUP == 0 )) || run_wrk "$WORK/warmup.txt" "$WARMUP" "$dir" "$n"
    c0=$(tree_cpu_ticks "$ROUTER_PID")
    run_wrk "$raw" "$DURATION" "$dir" "$n"
    c1=$(tree_cpu_ticks "$ROUTER_PID")
    stop "$ROUTER_PID"
    "$PYTHON" "$HERE/overhead/report.py" parse "$raw" round="$1KB-$2" target="$3" size="$1" set="$2" \
        cpu_ticks=$(( c1 - c0 )) clk_tck="$CLK_TCK" >>"$OUT/rows.jsonl" || die "cannot parse $raw"
}

log "backends $B1 $B2 $B3 $B4; rows: $SIZES KB x $SETS x ${RUN[*]}; ${DURATION}s each; out $OUT"
: >"$OUT/rows.jsonl"
for size in $SIZES; do for set in $SETS; do for r in "${RUN[@]}"; do run_row "$size" "$set" "$r"; done; done; done

# -------------------------------------------------------------------- report ----
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] || commit+=" (with uncommitted changes)"
{
    cat <<EOF
# Prompt size: routers on large prompts

\`$COMMAND\` at commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs

- $BINARIES
- sglang-router ${SGLANG_VERSION:-not run}; $("$HAPROXY" -v | head -n1 | cut -d' ' -f1-3); four nginx backends (1 worker)
- wrk -t1 -c32 -d${DURATION}s after a ${WARMUP}s warm-up; each router started afresh per row
- body bytes: $(printf '%s; ' "${BODY_SIZES[@]}" | sed 's/; $//')

EOF
    "$PYTHON" "$HERE/prompt_size/table.py" "$OUT/rows.jsonl"
} >"$OUT/results.md"
cat "$OUT/results.md"
log "results: $OUT/results.md"
grep -q '"flagged": true' "$OUT/rows.jsonl" || exit 0
log "WARNING: a row had non-2xx answers, socket errors or no requests (marked ! above)"
exit 3
