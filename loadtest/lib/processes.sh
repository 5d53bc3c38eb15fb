# loadtest/lib/processes.sh: process helpers shared by overhead.sh and h2_overhead.sh.
# Sourced, not run. The caller defines log, die, $WORK (process logs) and $CURL, and reads
# LAST_PID after `start`.

find_tool() {  # nginx/haproxy live in /usr/sbin, which a non-root PATH may lack
    command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true
}

proc_tree() {  # print PID and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null || true); do proc_tree "$c"; done
}

start() {  # start NAME CMD...  -> sets LAST_PID; stdout/stderr to $WORK/NAME.log
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

show_logs() {  # show_logs NAME [extra files...]
    local f
    for f in "$WORK/$1.log" "${@:2}"; do
        [[ -s $f ]] || continue
        echo "---- $f (last 30 lines) ----" >&2
        tail -n 30 "$f" >&2
    done
}

wait_ready() {  # wait_ready NAME PID URL [extra log files...]  (<= ~10 s)
    local name=$1 pid=$2 url=$3 deadline=$(( SECONDS + 10 ))
    while (( SECONDS < deadline )); do
        kill -0 "$pid" 2>/dev/null || { show_logs "$name" "${@:4}"; die "$name exited during startup"; }
        if "$CURL" -sf -o /dev/null --max-time 1 "$url"; then return 0; fi
        sleep 0.1
    done
    show_logs "$name" "${@:4}"
    die "$name not ready after ~10 s ($url)"
}

tree_cpu_ticks() {  # utime+stime (clock ticks) of PID and all descendants
    local total=0 p stat f
    for p in $(proc_tree "$1"); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }          # drop "pid (comm) " — comm may contain spaces
        read -r -a f <<<"$stat"    # f[0] is field 3 (state): utime=f[11], stime=f[12]
        total=$(( total + f[11] + f[12] ))
    done
    echo "$total"
}

tree_rss_mb() {  # VmRSS of PID and all descendants, MB
    local total=0 p kb
    for p in $(proc_tree "$1"); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$(( total + ${kb:-0} ))
    done
    awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}
