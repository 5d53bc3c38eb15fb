#!/usr/bin/env python3
"""Helpers for loadtest/h2_overhead.sh (stdlib only).

  report.py parse H2LOAD_OUTPUT_FILE key=value ...
      Parse one `h2load -D` output and print one JSON line (the per-run
      record).  Extra key=value pairs are added to the record; values that
      look like numbers become numbers.  Recognised extras:
        cpu_ticks, clk_tck          -> cpu_ms, cpu_ms_per_1k_req
        backend_cpu_ticks           -> backend_cpu_ms_per_1k_req
      Exits 1 if the output cannot be parsed.

  report.py parse-hs BATCHES_FILE key=value ...
      Parse the concatenated outputs of the handshake batches (`h2load -c N
      -n N -m 1`, one request per connection, each output starting with a
      line "==== batch K ====") and print one JSON line: handshakes/s = the
      batches' successful requests (one per connection) over the sum of their
      "finished in" times, CPU ms per 1,000 handshakes, mean connect time.

  report.py summarize RESULTS.jsonl [RSS.json]
      Print the summary table (medians over rounds) to stdout.
"""
import json
import re
import statistics
import sys

TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
ORDER = ["haproxy", "nginx", "envoy", "sluice"]
MODES = ["h2c", "tls"]
PEERS = ["haproxy", "nginx", "envoy"]


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparseable h2load time {text!r}")
    return float(m.group(1)) * TIME_UNITS_MS[m.group(2)]


def num(v):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def parse_h2load(text):
    """One h2load run. Raises ValueError if the summary is missing."""
    rec = {}
    m = re.search(r"^finished in ([0-9.]+(?:us|ms|s|m|h)), ([0-9.]+) req/s", text, re.M)
    if not m:
        raise ValueError("no 'finished in ..., N req/s' line in h2load output")
    rec["elapsed_s"] = round(to_ms(m.group(1)) / 1000.0, 4)
    rec["rps"] = float(m.group(2))
    m = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        text, re.M)
    if not m:
        raise ValueError("no 'requests: ...' line in h2load output")
    for k, v in zip(["requests", "started", "done", "succeeded", "failed", "errored", "timeout"], m.groups()):
        rec[k] = int(v)
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    if not m:
        raise ValueError("no 'status codes: ...' line in h2load output")
    s2, s3, s4, s5 = map(int, m.groups())
    rec["status_2xx"] = s2
    rec["non2xx"] = s3 + s4 + s5
    # "time for request:  min  max  mean  sd  +/- sd"
    for key, label in (("req", "time for request"), ("connect", "time for connect"), ("ttfb", "time to 1st byte")):
        m = re.search(rf"^{label}:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
        if m:
            rec[f"{key}_min_ms"] = round(to_ms(m.group(1)), 4)
            rec[f"{key}_max_ms"] = round(to_ms(m.group(2)), 4)
            rec[f"{key}_mean_ms"] = round(to_ms(m.group(3)), 4)
            rec[f"{key}_sd_ms"] = round(to_ms(m.group(4)), 4)
    for key, pat in (("tls_protocol", r"^TLS Protocol: (\S+)"), ("tls_cipher", r"^Cipher: (\S+)"),
                     ("tls_temp_key", r"^Server Temp Key: (.+)$"), ("alpn", r"^Application protocol: (\S+)")):
        m = re.search(pat, text, re.M)
        if m:
            rec[key] = m.group(1).strip()
    # h2load's "failed" includes non-2xx answers and "errored" (network errors, resets).
    rec["errors"] = rec["failed"] + rec["timeout"] + rec["non2xx"]
    return rec


def flag(rec, mode):
    bad = rec["errors"] > 0 or rec["errored"] > 0 or rec["status_2xx"] == 0
    # The protocol must really be HTTP/2: "h2c" in cleartext, "h2" by ALPN over TLS.
    want = "h2" if mode in ("tls", "handshake") else "h2c"
    if rec.get("alpn") != want:
        bad = True
    return bad


def extras_of(extras):
    extra = {}
    for kv in extras:
        k, _, v = kv.partition("=")
        extra[k] = num(v)
    return extra


def add_cpu(out, extra, count, per):
    clk = extra.get("clk_tck", 100) or 100
    count = max(count, 1)
    if "cpu_ticks" in extra:
        cpu_ms = extra["cpu_ticks"] * 1000.0 / clk
        out["cpu_ms"] = round(cpu_ms, 1)
        out[f"cpu_ms_per_1k_{per}"] = round(cpu_ms * 1000.0 / count, 4)
    if "backend_cpu_ticks" in extra:
        bms = extra["backend_cpu_ticks"] * 1000.0 / clk
        out["backend_cpu_ms"] = round(bms, 1)
        out[f"backend_cpu_ms_per_1k_{per}"] = round(bms * 1000.0 / count, 4)


def clean(extra):
    return {k: v for k, v in extra.items() if k not in ("cpu_ticks", "backend_cpu_ticks", "clk_tck")}


def cmd_parse(path, extras):
    with open(path) as f:
        text = f.read()
    try:
        rec = parse_h2load(text)
    except ValueError as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    extra = extras_of(extras)
    out = clean(extra)
    out.update(rec)
    add_cpu(out, extra, rec["succeeded"], "req")
    out["flagged"] = flag(rec, out.get("mode", ""))
    print(json.dumps(out))
    cpu = out.get("cpu_ms_per_1k_req")
    print(
        f"  round {out.get('round', '?')} {out.get('mode', '?'):<4} {out.get('target', '?'):<8} {out['rps']:>9.0f} req/s"
        f"  mean {out.get('req_mean_ms', float('nan')):.3f} ms  sd {out.get('req_sd_ms', float('nan')):.3f} ms"
        f"  max {out.get('req_max_ms', float('nan')):.2f} ms"
        f"  cpu {('%.2f' % cpu) if cpu is not None else 'n/a'} ms/1k req (top thread {fmt(out.get('busiest_thread_share'))})"
        f"  errors {out['errors'] + out['errored']}  {out.get('alpn', '?')}"
        + ("  <-- FLAGGED" if out["flagged"] else ""),
        file=sys.stderr,
    )
    return 0


def cmd_parse_hs(path, extras):
    with open(path) as f:
        text = f.read()
    blocks = [b for b in re.split(r"^==== batch \d+ ====\s*$", text, flags=re.M) if b.strip()]
    if not blocks:
        print("report.py: no handshake batches", file=sys.stderr)
        return 1
    recs = []
    for i, b in enumerate(blocks):
        try:
            recs.append(parse_h2load(b))
        except ValueError as e:
            print(f"report.py: batch {i + 1}: {e}", file=sys.stderr)
            return 1
    extra = extras_of(extras)
    out = clean(extra)
    ok = sum(r["status_2xx"] for r in recs)
    elapsed = sum(r["elapsed_s"] for r in recs)
    conn_n = [(r["connect_mean_ms"], r["status_2xx"]) for r in recs if "connect_mean_ms" in r]
    out.update({
        "batches": len(recs),
        "handshakes": ok,
        "h2load_elapsed_s": round(elapsed, 4),
        "hs_per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "connect_mean_ms": round(sum(c * n for c, n in conn_n) / max(sum(n for _, n in conn_n), 1), 4) if conn_n else None,
        "requests": sum(r["requests"] for r in recs),
        "failed": sum(r["failed"] for r in recs),
        "errored": sum(r["errored"] for r in recs),
        "timeout": sum(r["timeout"] for r in recs),
        "non2xx": sum(r["non2xx"] for r in recs),
        "status_2xx": ok,
        "errors": sum(r["errors"] for r in recs),
    })
    for key in ("tls_protocol", "tls_cipher", "tls_temp_key", "alpn"):
        vals = {r.get(key) for r in recs}
        out[key] = vals.pop() if len(vals) == 1 else sorted(str(v) for v in vals)
    add_cpu(out, extra, ok, "hs")
    out["flagged"] = any(flag(r, "handshake") for r in recs) or ok == 0
    print(json.dumps(out))
    cpu = out.get("cpu_ms_per_1k_hs")
    print(
        f"  round {out.get('round', '?')} hs   {out.get('target', '?'):<8} {out['hs_per_s']:>9.0f} handshakes/s"
        f"  ({ok} in {out['batches']} batches, {elapsed:.2f} s)"
        f"  connect mean {out['connect_mean_ms'] if out['connect_mean_ms'] is not None else float('nan'):.2f} ms"
        f"  cpu {('%.2f' % cpu) if cpu is not None else 'n/a'} ms/1k hs (top thread {fmt(out.get('busiest_thread_share'))})"
        f"  errors {out['errors'] + out['errored']}" + ("  <-- FLAGGED" if out["flagged"] else ""),
        file=sys.stderr,
    )
    return 0


def fmt(v, nd=2, width=0):
    s = "n/a" if v is None else f"{v:.{nd}f}"
    return f"{s:>{width}}" if width else s


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


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

    def targets_of(mode):
        seen = {r["target"] for r in runs if r["mode"] == mode}
        return [t for t in ORDER if t in seen] + sorted(seen - set(ORDER))

    summary = {}
    lines = []
    hdr = (f"{'mode':<4} {'proxy':<8} {'runs':>4} {'req/s (median)':>14} {'[min-max] req/s':>21}"
           f" {'CPU ms/1k req':>13} {'top thr':>7} {'mean ms':>8} {'sd ms':>7} {'max ms':>8} {'RSS MB':>7} {'errors':>7}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for mode in MODES:
        for t in targets_of(mode):
            rs = [r for r in runs if r["mode"] == mode and r["target"] == t]
            rps = [r["rps"] for r in rs]
            s = summary[(mode, t)] = {
                "n": len(rs),
                "rps": statistics.median(rps),
                "cpu": median(r.get("cpu_ms_per_1k_req") for r in rs),
                "top": median(r.get("busiest_thread_share") for r in rs),
                "mean": median(r.get("req_mean_ms") for r in rs),
                "sd": median(r.get("req_sd_ms") for r in rs),
                "max": max((r.get("req_max_ms") or 0.0) for r in rs),
                "errors": sum(r["errors"] + r["errored"] for r in rs),
                "flagged": sum(1 for r in rs if r.get("flagged")),
            }
            rng = f"[{min(rps):.0f}-{max(rps):.0f}]"
            err = f"{s['errors']}" + (f" !{s['flagged']}run" if s["flagged"] else "")
            lines.append(
                f"{mode:<4} {t:<8} {s['n']:>4} {s['rps']:>14.0f} {rng:>21} {fmt(s['cpu'], 2, 13)} {fmt(s['top'], 2, 7)}"
                f" {fmt(s['mean'], 3, 8)} {fmt(s['sd'], 3, 7)} {fmt(s['max'], 2, 8)}"
                f" {fmt(rss.get(f'{mode}:{t}'), 1, 7)} {err:>7}"
            )
    hs_targets = targets_of("handshake")
    if hs_targets:
        lines.append("")
        hdr2 = (f"{'TLS handshakes':<14} {'runs':>4} {'handshakes/s (median)':>21} {'[min-max]':>15}"
                f" {'CPU ms/1k hs':>12} {'top thr':>7} {'connect mean ms':>15} {'errors':>7}")
        lines.append(hdr2)
        lines.append("-" * len(hdr2))
        for t in hs_targets:
            rs = [r for r in runs if r["mode"] == "handshake" and r["target"] == t]
            hs = [r["hs_per_s"] for r in rs]
            s = summary[("handshake", t)] = {
                "n": len(rs),
                "rps": statistics.median(hs),
                "cpu": median(r.get("cpu_ms_per_1k_hs") for r in rs),
                "connect": median(r.get("connect_mean_ms") for r in rs),
                "top": median(r.get("busiest_thread_share") for r in rs),
                "errors": sum(r["errors"] + r["errored"] for r in rs),
                "flagged": sum(1 for r in rs if r.get("flagged")),
            }
            rng = f"[{min(hs):.0f}-{max(hs):.0f}]"
            err = f"{s['errors']}" + (f" !{s['flagged']}run" if s["flagged"] else "")
            lines.append(f"{t:<14} {s['n']:>4} {s['rps']:>21.0f} {rng:>15} {fmt(s['cpu'], 1, 12)} {fmt(s['top'], 2, 7)}"
                         f" {fmt(s['connect'], 2, 15)} {err:>7}")

    lines.append("")
    lines.append("CPU ms/1k req = proxy process tree utime+stime during the measured run per 1,000 succeeded (2xx) requests;")
    lines.append("CPU ms/1k hs  = the same per 1,000 full TLS handshakes (each with one h2 POST), over all batches.")
    lines.append("top thr       = the busiest thread's share of that CPU time (median; 0.50 = even over 2 workers, 1.00 = one did all).")
    lines.append("mean/sd/max ms = h2load 'time for request' (mean and sd: median over rounds; max: over all rounds).")
    lines.append("RSS MB = VmRSS of the instance's process tree after all rounds (each mode has its own instance).")

    def ratio(mode, a, b, key):
        sa, sb = summary.get((mode, a)), summary.get((mode, b))
        if sa and sb and sa[key] is not None and sb[key]:
            return f"{sa[key] / sb[key]:.3f}"
        return "n/a"

    if any(k[1] == "sluice" for k in summary):
        lines.append("")
        cols = [("h2c", "rps", "h2c req/s"), ("h2c", "cpu", "h2c CPU"), ("tls", "rps", "tls req/s"),
                ("tls", "cpu", "tls CPU"), ("handshake", "rps", "handshakes/s"), ("handshake", "cpu", "hs CPU")]
        lines.append(f"{'ratio':<15}" + "".join(f" {c[2]:>12}" for c in cols))
        for peer in PEERS:
            if not any(k[1] == peer for k in summary):
                continue
            lines.append(f"{'sluice/' + peer:<15}" + "".join(f" {ratio(c[0], 'sluice', peer, c[1]):>12}" for c in cols))
        lines.append("(req/s, handshakes/s: > 1 = Sluice faster; CPU: < 1 = Sluice uses less per request/handshake)")
    else:
        lines.append("")
        lines.append("no sluice rows: no sluice/haproxy, sluice/nginx, sluice/envoy ratios")

    flagged = [r for r in runs if r.get("flagged")]
    if flagged:
        lines.append("")
        lines.append(f"WARNING: {len(flagged)} run(s) had failures (failed/errored/timeout, non-2xx, or not HTTP/2):")
        for r in flagged:
            lines.append(
                f"  round {r.get('round')} {r['mode']} {r['target']}: failed={r['failed']} errored={r['errored']}"
                f" timeout={r['timeout']} non2xx={r['non2xx']} 2xx={r['status_2xx']} protocol={r.get('alpn')}"
            )
    print("\n".join(lines))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "parse":
        return cmd_parse(argv[2], argv[3:])
    if len(argv) >= 3 and argv[1] == "parse-hs":
        return cmd_parse_hs(argv[2], argv[3:])
    if len(argv) in (3, 4) and argv[1] == "summarize":
        return cmd_summarize(argv[2], argv[3] if len(argv) == 4 else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
