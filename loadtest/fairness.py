#!/usr/bin/env python3
"""loadtest/fairness.py: two tenants on one saturated pool, by request turns and by tokens.

A quiet tenant sends short chat requests (a short prompt, QUIET_TOKENS of output, streamed);
a noisy one sends requests ten times larger in tokens (a longer prompt, ten times the output,
not streamed), at the same request rate: ten times the quiet tenant's tokens. Both are Poisson,
open-loop. The pool has REPLICAS simulated replicas on a fixed clock (`sluice-replica --ttft-ms
--itl-ms`: a request's time is its output length, whatever else runs), each capped at
`max_concurrent_per_replica: SLOTS`, so the gateway's queue decides who goes next. The quiet
tenant's rate is set to about 45% of the pool's slots, under its fair half; the noisy one asks
for several times the pool.

Runs, each RUN seconds on a fresh gateway (the same replicas):
  alone     the quiet tenant only (`queue.fairness: tokens`; nothing else waits)
  requests  both tenants, `queue.fairness: requests` (turns by request: the current default)
  tokens    both tenants, `queue.fairness: tokens` (virtual token counters), and
            `queue.headroom: HEADROOM` (--headroom, default 0)
repeated ROUNDS times, interleaved. For each: tokens served per tenant over the run (the usage
the replicas reported, prompt and completion, of answers that finished within it), Jain's index
over the two tenants' tokens served ((x1 + x2)^2 / (2 (x1^2 + x2^2)); 1 = equal), the same index
over tokens served relative to each tenant's max-min fair share of what the pool served in all
(Jain, Chiu and Hawe 1984, for unequal fair allocations: 1 = each got its fair share), the pool's
share of slot time used (what idling slots for headroom costs), and the quiet tenant's p50/p95 time to first token,
with its ratio to the `alone` run of the same round.

--quiet-load sets what the quiet tenant asks, as a share of the slots (default 0.45: under its
half, so the raw index cannot reach 1 without idling slots the noisy tenant wants). Above 0.5
both tenants are backlogged, the case fair queueing's guarantee is about, and the raw index is
the measure; the TTFT ratio is then meaningless (the quiet tenant's own queue grows).

The issue's bar: Jain >= 0.95 and the quiet tenant's p95 TTFT within 1.2x of alone.

Usage: loadtest/fairness.py [--bin DIR] [--rounds N] [--run SECONDS] [--replicas N] [--slots N]
                            [--headroom N] [--quiet-load SHARE] [--ttft-ms MS] [--itl-ms MS] [--check]
"""
import argparse
import asyncio
import json
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "python"))
from localnet import free_port, start_gateway, start_replicas, stop_processes  # noqa: E402

QUIET_TOKENS = 10
NOISY_TOKENS = 100
GRACE = 2.0  # seconds after a run in which answers still count
USAGE = re.compile(rb'"total_tokens"\s*:\s*(\d+)')


async def one_request(port, key, body, stream, results, tenant):
    """Sends one request on its own connection; records TTFT (streams) and the usage total."""
    payload = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + payload)
        await writer.drain()
        received = b""
        first = None
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            received += chunk
            if stream and first is None and b'"content"' in received.split(b"\r\n\r\n", 1)[-1]:
                first = time.monotonic() - start
        writer.close()
    except OSError as error:
        results.append((tenant, "error", str(error), 0, None, time.monotonic()))
        return
    status = received[9:12].decode(errors="replace")
    found = USAGE.findall(received)
    tokens = int(found[-1]) if found else 0
    results.append((tenant, status, None, tokens, first, time.monotonic()))


async def tenant_load(port, key, tenant, rate, seconds, body, stream, results, seed, tasks, sent):
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while True:
        next_at += rng.expovariate(rate)
        if next_at >= end:
            return
        await asyncio.sleep(max(0, next_at - time.monotonic()))
        sent[tenant] = sent.get(tenant, 0) + 1
        tasks.append(asyncio.ensure_future(one_request(port, key, body, stream, results, tenant)))


async def drive(port, tenants, seconds, grace):
    results, tasks, sent = [], [], {}
    await asyncio.gather(*(tenant_load(port, key, name, rate, seconds, body, stream, results, seed, tasks, sent)
                           for name, key, rate, body, stream, seed in tenants))
    # Answers still running `grace` after the last arrival are cut, and not counted.
    _, pending = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    return results, sent


def gateway_yaml(port, admin, replicas, slots, fairness, quiet_keys, noisy_keys, headroom=0):
    listed = ", ".join(f'"127.0.0.1:{p}"' for p in replicas)
    return f"""listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
workers: 2
log_level: warning
pools:
  - name: chat
    match: {{ paths: ["/v1/*"] }}
    replicas: [{listed}]
    routing: {{ policy: round-robin }}
    max_concurrent_per_replica: {slots}
    queue: {{ max: 100000, timeout: 120s, fairness: {fairness}, headroom: {headroom} }}
limits:
  max_connections: 100000
  tenants:
    - {{ name: quiet, keys_file: "{quiet_keys}" }}
    - {{ name: noisy, keys_file: "{noisy_keys}" }}
"""


def jain(values):
    total = sum(values)
    squares = sum(v * v for v in values)
    return total * total / (len(values) * squares) if squares else 0.0


def max_min_shares(demands, capacity):
    """Max-min fair shares of `capacity` (water-filling): a tenant asking less than an equal
    split gets what it asks; the rest is split equally among those asking more."""
    shares, left, open_ = {}, capacity, sorted(demands, key=demands.get)
    while open_:
        equal = left / len(open_)
        name = open_[0]
        if demands[name] > equal:
            for rest in open_:
                shares[rest] = equal
            break
        shares[name] = demands[name]
        left -= demands[name]
        open_.pop(0)
    return shares


def jain_against_fair(served, demands):
    """Jain's index over x_i = served_i / fair_i (Jain, Chiu and Hawe 1984: when the fair
    allocation is not equal, the index is taken over throughput normalised by it), the fair
    shares being max-min over what the run served in all. 1 = every tenant got its fair share."""
    shares = max_min_shares(demands, sum(served.values()))
    return jain([served[name] / shares[name] for name in served if shares[name] > 0])


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=".build/release")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--run", type=float, default=30)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--ttft-ms", type=int, default=100)
    parser.add_argument("--itl-ms", type=int, default=10)
    parser.add_argument("--headroom", type=int, default=0, help="queue.headroom of the tokens runs")
    parser.add_argument("--quiet-load", type=float, default=0.45,
                        help="the quiet tenant's offered load as a share of the pool's slots (above 0.5, both tenants are backlogged)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a request failed, or if by tokens the quiet tenant was served less, waited longer or "
                             "was further from its fair share than by turns (CI's smoke run)")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = args.out or tempfile.mkdtemp(prefix="sluice-fairness-")
    os.makedirs(out, exist_ok=True)
    quiet_keys, noisy_keys = os.path.join(out, "quiet.keys"), os.path.join(out, "noisy.keys")
    open(quiet_keys, "w").write("sk-quiet\n")
    open(noisy_keys, "w").write("sk-noisy\n")
    slots = args.replicas * args.slots
    quiet_service = (args.ttft_ms + QUIET_TOKENS * args.itl_ms) / 1000
    noisy_service = (args.ttft_ms + NOISY_TOKENS * args.itl_ms) / 1000
    quiet_rate = args.quiet_load * slots / quiet_service
    quiet_body = {"model": "sim-7b", "max_tokens": QUIET_TOKENS, "stream": True, "stream_options": {"include_usage": True},
                  "messages": [{"role": "user", "content": "a short question " * 4}]}
    noisy_body = {"model": "sim-7b", "max_tokens": NOISY_TOKENS, "stream": False,
                  "messages": [{"role": "user", "content": "a long document to summarise " * 40}]}
    processes = []
    try:
        replicas = start_replicas(args.bin, args.replicas, out, ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)], processes)
        print(f"{args.replicas} replicas x {args.slots} slots, TTFT {args.ttft_ms} ms, ITL {args.itl_ms} ms; "
              f"quiet {quiet_rate:.1f} req/s x {QUIET_TOKENS} tokens out (streamed), noisy the same rate x {NOISY_TOKENS}; "
              f"{args.run:.0f} s runs, {args.rounds} rounds; tokens runs with queue.headroom {args.headroom}", flush=True)
        rows = []
        for round_number in range(1, args.rounds + 1):
            alone_p95 = None
            for mode in ("alone", "requests", "tokens"):
                port, admin = free_port(), free_port()
                path = os.path.join(out, f"{mode}-{round_number}.yaml")
                open(path, "w").write(gateway_yaml(port, admin, replicas, args.slots, "tokens" if mode == "alone" else mode, quiet_keys, noisy_keys,
                                                      args.headroom if mode == "tokens" else 0))
                gateway = []
                try:
                    start_gateway(args.bin, path, admin, os.path.join(out, f"{mode}-{round_number}.log"), gateway)
                    tenants = [("quiet", "sk-quiet", quiet_rate, quiet_body, True, round_number * 2)]
                    if mode != "alone":
                        tenants.append(("noisy", "sk-noisy", quiet_rate, noisy_body, False, round_number * 2 + 1))
                    results, sent = asyncio.run(drive(port, tenants, args.run, grace=GRACE))
                finally:
                    stop_processes(gateway)
                answers = {name: [r for r in results if r[0] == name and r[1] == "200"] for name in ("quiet", "noisy")}
                answered = {name: len(answers[name]) for name in answers}
                served = {name: sum(r[3] for r in answers[name]) for name in answers}
                ttfts = [r[4] * 1000 for r in answers["quiet"] if r[4] is not None]
                failed = sum(1 for r in results if r[1] != "200")
                # Requests of one tenant are all alike, so what it asked for is what it sent times
                # the tokens of one answer.
                per_request = {name: statistics.median([r[3] for r in answers[name]] or [0]) for name in answers}
                demands = {name: int(sent.get(name, 0) * per_request[name]) for name in ("quiet", "noisy")}
                p95 = percentile(ttfts, 0.95)
                if mode == "alone":
                    alone_p95 = p95
                row = {"round": round_number, "mode": mode, "quiet_tokens": served["quiet"], "noisy_tokens": served["noisy"],
                       "jain": jain([served["quiet"], served["noisy"]]) if mode != "alone" else None,
                       "jain_fair": jain_against_fair(served, demands) if mode != "alone" else None,
                       "quiet_asked": demands["quiet"], "noisy_asked": demands["noisy"],
                       # The replicas' clock is fixed, so each answer held its slot for TTFT + tokens x ITL.
                       "slots_busy": (answered["quiet"] * quiet_service + answered["noisy"] * noisy_service) / (slots * (args.run + GRACE)),
                       "ttft_p50": percentile(ttfts, 0.5), "ttft_p95": p95, "ttft_ratio": p95 / alone_p95 if alone_p95 else None,
                       "quiet_answers": len(ttfts), "failed": failed}
                rows.append(row)
                jain_text = f"{row['jain']:.3f} (vs fair share {row['jain_fair']:.3f})" if row["jain"] is not None else "-"
                print(f"round {round_number} {mode:8}  tokens served quiet {served['quiet']:7d} of {demands['quiet']:7d} asked,"
                      f" noisy {served['noisy']:7d} of {demands['noisy']:7d}  Jain {jain_text}"
                      f"  quiet TTFT p50 {row['ttft_p50']:6.1f} p95 {p95:6.1f} ms ({row['ttft_ratio']:.2f}x alone)  answers {len(ttfts)}  failed {failed}",
                      flush=True)
        json.dump(rows, open(os.path.join(out, "fairness.json"), "w"), indent=1)
        print()
        print("| queue | quiet served / asked | Jain over tokens served | Jain vs max-min fair share | slots busy | quiet TTFT p95 ms | x alone |")
        print("|---|---|---|---|---|---|---|")
        for mode in ("alone", "requests", "tokens"):
            mine = [r for r in rows if r["mode"] == mode]
            median = lambda key: statistics.median(r[key] for r in mine)  # noqa: E731
            quiet_share = statistics.median(r["quiet_tokens"] / r["quiet_asked"] if r["quiet_asked"] else 0 for r in mine)
            if mode == "alone":
                print(f"| {mode} | {quiet_share:.2f} | - | - | {median('slots_busy'):.0%} | {median('ttft_p95'):.1f} | 1.00 |")
            else:
                print(f"| {mode} | {quiet_share:.2f} | {median('jain'):.3f} | {median('jain_fair'):.3f} | {median('slots_busy'):.0%} | "
                      f"{median('ttft_p95'):.1f} | {median('ttft_ratio'):.2f} |")
        print(f"raw: {out}")
        if args.check:
            if any(r["failed"] or not r["quiet_answers"] for r in rows):
                sys.exit(f"fairness.py --check: a request failed, or a run had no quiet answer: {rows}")
            by = {(r["round"], r["mode"]): r for r in rows}
            for round_number in range(1, args.rounds + 1):
                turns, tokens = by[(round_number, "requests")], by[(round_number, "tokens")]
                if tokens["quiet_tokens"] < turns["quiet_tokens"] \
                        or tokens["ttft_p95"] > turns["ttft_p95"] or tokens["jain_fair"] < turns["jain_fair"]:
                    sys.exit(f"fairness.py --check: round {round_number}: by turns {turns}, by tokens {tokens}")
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    main()
