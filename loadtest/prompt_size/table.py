#!/usr/bin/env python3
"""The results table of loadtest/prompt_size.sh (stdlib only).

  table.py ROWS.jsonl

ROWS.jsonl holds one line per run from `loadtest/overhead/report.py parse` with the extras
size (KB), set (shared|distinct), target (the router) and cpu_ticks. Prints a Markdown table
in the order the rows ran, one line per row: req/s, mean and p99 latency, the router's CPU
(utime+stime of its processes) per request, and req/s as a ratio of sglang-router's in the
same size and set. A row with non-2xx answers, socket errors or no request is marked `!` and
listed below the table, above a legend.
"""
import json
import sys

SGLANG = "sglang-cache"
LEGEND = """\
CPU ms/req: utime+stime of the router's processes during the measured run, per request.
Routers: sluice-rr round-robin (the body is not read); sluice-hash-prefix consistent-hash, key
[prefix]; sluice-cache-prefix cache-aware, key [prefix]; sluice-hash-user consistent-hash, key
[body:user]; baseline-* the same with the baseline binary; sglang-cache sglang-router
cache_aware; haproxy-rr HAProxy roundrobin (the body is not read)."""


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in open(argv[1]) if line.strip()]
    peer = {(r["size"], r["set"]): r["rps"] for r in rows if r["target"] == SGLANG}
    print("| size | prompts | router | req/s | mean ms | p99 ms | CPU ms/req | req/s vs sglang-router |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = peer.get((r["size"], r["set"]))
        ratio = f"{r['rps'] / base:.2f}" if base else "n/a"
        cpu = r.get("cpu_ms_per_1k_req")
        cpu = f"{cpu / 1000:.3f}" if cpu is not None and r["requests"] else "n/a"
        mark = " !" if r["flagged"] else ""
        print(f"| {r['size']} KB | {r['set']} | {r['target']}{mark} | {r['rps']:.0f} | {r.get('avg_ms', 0):.2f} "
              f"| {r['p99_ms']:.2f} | {cpu} | {ratio} |")
    print()
    for r in rows:
        if r["flagged"]:
            print(f"! {r['size']} KB {r['set']} {r['target']}: {r['requests']} requests, "
                  f"{r['non2xx']} non-2xx, {sum(r['socket_errors'].values())} socket errors  ")
    if any(r["flagged"] for r in rows):
        print()
    print(LEGEND)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
