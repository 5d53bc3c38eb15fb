#!/usr/bin/env python3
"""Helpers for loadtest/overhead.sh (stdlib only).

  report.py parse WRK_OUTPUT_FILE key=value ...
      Parse one `wrk --latency` output and print one JSON line (the per-run
      record).  Extra key=value pairs are added to the record; values that
      look like numbers become numbers.  Recognised extras:
        cpu_ticks, clk_tck          -> cpu_ms, cpu_ms_per_1k_req
        backend_cpu_ticks           -> backend_cpu_ms_per_1k_req
      Exits 1 if the output cannot be parsed.

  report.py summarize RESULTS.jsonl [RSS.json]
      Print the summary table (medians over rounds) to stdout.
"""
import json
import re
import statistics
import sys

TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
ORDER = ["direct", "haproxy", "nginx", "envoy", "sglang", "relay", "sluice"]


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparseable wrk time {text!r}")
    return float(m.group(1)) * TIME_UNITS_MS[m.group(2)]


def num(v):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def parse_wrk(text):
    rec = {}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", text, re.M)
    if not m:
        raise ValueError("no 'N requests in' line in wrk output")
    rec["requests"] = int(m.group(1))
    rec["elapsed_s"] = round(to_ms(m.group(2) + m.group(3)) / 1000.0, 3)
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if not m:
        raise ValueError("no 'Requests/sec:' line in wrk output")
    rec["rps"] = float(m.group(1))
    pct = {}
    for p, v in re.findall(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", text, re.M):
        pct[p] = to_ms(v)
    if "50" not in pct or "99" not in pct:
        raise ValueError("no latency distribution (was --latency given?)")
    rec["p50_ms"] = round(pct["50"], 4)
    rec["p75_ms"] = round(pct.get("75", float("nan")), 4)
    rec["p90_ms"] = round(pct.get("90", float("nan")), 4)
    rec["p99_ms"] = round(pct["99"], 4)
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        rec["avg_ms"] = round(to_ms(m.group(1)), 4)
        rec["max_ms"] = round(to_ms(m.group(3)), 4)
    sock = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        sock = dict(zip(["connect", "read", "write", "timeout"], map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rec["non2xx"] = int(m.group(1)) if m else 0
    rec["socket_errors"] = sock
    rec["errors"] = rec["non2xx"] + sum(sock.values())
    rec["flagged"] = rec["errors"] > 0 or rec["requests"] == 0
    return rec


def cmd_parse(path, extras):
    with open(path) as f:
        text = f.read()
    try:
        rec = parse_wrk(text)
    except ValueError as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    extra = {}
    for kv in extras:
        k, _, v = kv.partition("=")
        extra[k] = num(v)
    clk = extra.pop("clk_tck", 100) or 100
    out = {k: v for k, v in extra.items() if k not in ("cpu_ticks", "backend_cpu_ticks")}
    out.update(rec)
    req = max(rec["requests"], 1)
    if "cpu_ticks" in extra:
        cpu_ms = extra["cpu_ticks"] * 1000.0 / clk
        out["cpu_ms"] = round(cpu_ms, 1)
        out["cpu_ms_per_1k_req"] = round(cpu_ms * 1000.0 / req, 4)
    if "backend_cpu_ticks" in extra:
        bms = extra["backend_cpu_ticks"] * 1000.0 / clk
        out["backend_cpu_ms"] = round(bms, 1)
        out["backend_cpu_ms_per_1k_req"] = round(bms * 1000.0 / req, 4)
    print(json.dumps(out, sort_keys=False))
    # one human-readable progress line on stderr
    cpu = out.get("cpu_ms_per_1k_req")
    print(
        f"  round {out.get('round', '?')} {out.get('target', '?'):<8} {out['rps']:>9.0f} req/s"
        f"  p50 {out['p50_ms']:.3f} ms  p99 {out['p99_ms']:.3f} ms"
        f"  cpu {('%.2f' % cpu) if cpu is not None else 'n/a'} ms/1k req"
        f"  errors {out['errors']}" + ("  <-- FLAGGED" if out["flagged"] else ""),
        file=sys.stderr,
    )
    return 0


def fmt(v, nd=2):
    if v is None:
        return "n/a"
    return f"{v:.{nd}f}"


def cmd_summarize(path, rss_path=None):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    rss = {}
    if rss_path:
        try:
            with open(rss_path) as f:
                rss = json.load(f)
        except (OSError, ValueError):
            rss = {}
    targets = [t for t in ORDER if any(r["target"] == t for r in runs)]
    targets += sorted({r["target"] for r in runs} - set(targets))
    summary = {}
    for t in targets:
        rs = [r for r in runs if r["target"] == t]
        rps = [r["rps"] for r in rs]
        cpu = [r["cpu_ms_per_1k_req"] for r in rs if "cpu_ms_per_1k_req" in r]
        summary[t] = {
            "n": len(rs),
            "rps": statistics.median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p50": statistics.median(r["p50_ms"] for r in rs),
            "p99": statistics.median(r["p99_ms"] for r in rs),
            "cpu": statistics.median(cpu) if cpu else None,
            "errors": sum(r["errors"] for r in rs),
            "flagged": sum(1 for r in rs if r.get("flagged")),
        }
    lines = []
    hdr = f"{'config':<9} {'runs':>4} {'req/s (median)':>14} {'[min-max] req/s':>21} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/1k req':>13} {'errors':>7}"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for t in targets:
        s = summary[t]
        rng = f"[{s['rps_min']:.0f}-{s['rps_max']:.0f}]"
        err = f"{s['errors']}" + (f" !{s['flagged']}run" if s["flagged"] else "")
        lines.append(
            f"{t:<9} {s['n']:>4} {s['rps']:>14.0f} {rng:>21} {fmt(s['p50'], 3):>8} {fmt(s['p99'], 3):>8} {fmt(s['cpu']):>13} {err:>7}"
        )
    lines.append("")
    lines.append("CPU ms/1k req = proxy process tree utime+stime during the measured run per 1,000 requests")
    lines.append("                (for 'direct': the backend nginx master+worker).")
    if "relay" in summary:
        lines.append("relay         = `sluice relay`: plain SwiftNIO TCP relay, one backend connection per client")
        lines.append("                connection; the floor for any SwiftNIO proxy on this machine: no HTTP parsing.")
    lines.append("")
    if rss:
        lines.append("RSS after all rounds (VmRSS, process + all child processes):")
        for t in ("sluice", "relay", "haproxy", "nginx", "envoy", "sglang", "backend"):
            if t in rss and rss[t] is not None:
                lines.append(f"  {t:<8} {rss[t]:8.1f} MB")
        lines.append("")

    def ratio(a, b, key):
        if a in summary and b in summary and summary[a][key] is not None and summary[b][key]:
            return f"{summary[a][key] / summary[b][key]:.3f}"
        return "n/a"

    lines.append(f"sluice/haproxy req/s : {ratio('sluice', 'haproxy', 'rps')}")
    lines.append(f"sluice/haproxy p99   : {ratio('sluice', 'haproxy', 'p99')}")
    lines.append(f"sluice/nginx   req/s : {ratio('sluice', 'nginx', 'rps')}")
    if "sluice" in summary and "envoy" in summary:
        lines.append(f"sluice/envoy   req/s : {ratio('sluice', 'envoy', 'rps')}")
        lines.append(f"sluice/envoy   CPU   : {ratio('sluice', 'envoy', 'cpu')}  (CPU ms/1k req; < 1 = Sluice uses less)")
    if "sluice" in summary and "sglang" in summary:
        lines.append(f"sluice/sglang  req/s : {ratio('sluice', 'sglang', 'rps')}")
        lines.append(f"sluice/sglang  CPU   : {ratio('sluice', 'sglang', 'cpu')}  (CPU ms/1k req; < 1 = Sluice uses less)")
    if "sluice" in summary and "relay" in summary:
        lines.append(f"sluice/relay   CPU   : {ratio('sluice', 'relay', 'cpu')}  (CPU ms/1k req; the cost of Sluice's HTTP handling over NIO's floor)")
        lines.append(f"sluice/relay   req/s : {ratio('sluice', 'relay', 'rps')}")
    flagged = [r for r in runs if r.get("flagged")]
    if flagged:
        lines.append("")
        lines.append(f"WARNING: {len(flagged)} run(s) had errors (non-2xx or socket errors):")
        for r in flagged:
            lines.append(
                f"  round {r.get('round')} {r['target']}: non2xx={r['non2xx']} socket={r['socket_errors']} requests={r['requests']}"
            )
    print("\n".join(lines))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "parse":
        return cmd_parse(argv[2], argv[3:])
    if len(argv) in (3, 4) and argv[1] == "summarize":
        return cmd_summarize(argv[2], argv[3] if len(argv) == 4 else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
