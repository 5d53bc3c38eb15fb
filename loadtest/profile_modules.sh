#!/usr/bin/env bash
# loadtest/profile_modules.sh — where a running process's CPU time goes, by Swift module.
#
# Samples PID with `perf record -g` for SECONDS (default 8) and charges each sample to the
# module of the leaf-most stack frame that belongs to a Swift module other than the standard
# library (SluiceGateway, NIOHTTP2, NIOPosix, ...). Frames of the Swift runtime (retain,
# release, metadata), libc (malloc, write) and the kernel (the system calls behind a socket
# write) are charged to that nearest caller, so NIOPosix includes the socket I/O it asks for.
# Samples with no such frame are "other". Run it while a load runs (loadtest/h2_overhead.sh
# shows the setup; docs/benchmarks.md quotes its output).
#
# Usage: loadtest/profile_modules.sh PID [SECONDS]   (needs perf; run as root)
set -euo pipefail
[[ ${1:-} =~ ^[0-9]+$ ]] || { sed -n '2,12p' "$0"; exit 2; }
pid=$1 seconds=${2:-8}
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
data=$(mktemp /tmp/profile_modules.XXXXXX)
trap 'rm -f "$data"' EXIT
perf record -q -F 999 -g -p "$pid" -o "$data" -- sleep "$seconds" 2>/dev/null
perf script -i "$data" -F ip,sym 2>/dev/null | awk '
function flush() { if (started) { cnt[mod == "" ? "other" : mod]++; total++ } started = 0; mod = "" }
NF == 0 { flush(); next }
{
    started = 1
    if (mod == "" && match($2, /^\$s[0-9]+/)) {
        n = substr($2, 3, RLENGTH - 2) + 0
        mod = substr($2, RLENGTH + 1, n)
    }
}
END {
    flush()
    if (total == 0) { print "no samples" > "/dev/stderr"; exit 1 }
    for (m in cnt) printf "%5.1f%%  %s\n", 100 * cnt[m] / total, m
    printf "%d samples\n", total > "/dev/stderr"
}' | sort -rn
