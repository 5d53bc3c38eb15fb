#!/usr/bin/env python3
"""loadtest/shadow.py: what a shadow costs the clients of a versioned model.

Starts three simulated replicas (`sluice-replica --profile PROFILE`): two serve the model's
version (pool `stable`), one is the shadow's candidate (pool `candidate`). Two gateways run side
by side on the same replicas, configured the same but for `models[].shadow.share`: 0 (the copy
is drawn and never sent: the baseline) and 1 (every admitted request is copied). Rounds
alternate between them (baseline first, then shadowed, repeated), each a `sluice-load run` of
SCENARIO at the same rate, so the stable replicas see the same client load in both and only the
copies differ. Prints per round and as medians: requests/s, p50/p99 latency, p99 TTFT, errors,
and the shadowed/baseline ratio of p99 latency and p99 TTFT (the issue's bar: within 5%), with
the copies the candidate answered and skipped (`GET /admin/versions`).

The candidate is a replica of its own, so copies never queue behind client requests; what is
measured is the gateway's side: reading a copy out, the background client, the answers read
and dropped. A candidate sharing the stable replicas' GPUs would slow them; that is capacity,
not the gateway.

Usage: loadtest/shadow.py [--bin DIR] [--scenario FILE] [--rounds N] [--duration-scale X]
                          [--rate-scale X] [--profile FILE] [--out DIR]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "python"))
from localnet import free_port, start_gateway, start_replicas, stop_processes  # noqa: E402


def gateway_yaml(port, admin, replicas, share):
    stable = ", ".join(f'"127.0.0.1:{p}"' for p in replicas[:2])
    return f"""listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
workers: 2
log_level: warning
pools:
  - {{ name: stable, match: {{ paths: ["/v1/*"] }}, replicas: [{stable}], routing: {{ policy: least-queue }} }}
  - {{ name: candidate, match: {{ paths: ["/v1/*"], models: [candidate-only] }}, replicas: ["127.0.0.1:{replicas[2]}"] }}
models:
  - name: sim-7b
    versions: [{{ pool: stable }}]
    shadow: {{ pool: candidate, share: {share}, max_in_flight: 256 }}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=".build/release")
    parser.add_argument("--scenario", default="loadtest/scenarios/chat-steady.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration-scale", default="0.5")
    parser.add_argument("--rate-scale", default="1.0")
    parser.add_argument("--profile", default="configs/replicas/fast.yaml")
    parser.add_argument("--out", default=None)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless no run had errors and the candidate answered every copy (CI's smoke run)")
    args = parser.parse_args()
    for tool in ("sluice", "sluice-replica", "sluice-load"):
        if not os.access(os.path.join(args.bin, tool), os.X_OK):
            sys.exit(f"shadow.py: {args.bin}/{tool} not found (swift build -c release)")
    out = args.out or tempfile.mkdtemp(prefix="sluice-shadow-")
    os.makedirs(out, exist_ok=True)
    processes = []
    signal.signal(signal.SIGTERM, lambda *_: (stop_processes(processes), sys.exit(1)))
    try:
        replicas = start_replicas(args.bin, 3, out, ["--profile", args.profile], processes)
        gateways = {}
        for name, share in (("baseline", 0), ("shadowed", 1)):
            port, admin = free_port(), free_port()
            path = os.path.join(out, f"{name}.yaml")
            with open(path, "w") as f:
                f.write(gateway_yaml(port, admin, replicas, share))
            start_gateway(args.bin, path, admin, os.path.join(out, f"{name}.log"), processes)
            gateways[name] = (port, admin)
        rows = {"baseline": [], "shadowed": []}
        for round_number in range(1, args.rounds + 1):
            for name in ("baseline", "shadowed"):
                port, admin = gateways[name]
                run_dir = os.path.join(out, f"{name}-{round_number}")
                subprocess.run(
                    [os.path.join(args.bin, "sluice-load"), "run", args.scenario, "--target", f"http://127.0.0.1:{port}",
                     "--out", run_dir, "--duration-scale", args.duration_scale, "--rate-scale", args.rate_scale, "--quiet"],
                    check=True, stdout=subprocess.DEVNULL)
                with open(os.path.join(run_dir, "report.json")) as f:
                    report = json.load(f)
                row = {
                    "rps": report["throughput_rps"],
                    "p50": report["latency_ms"]["p50"],
                    "p99": report["latency_ms"]["p99"],
                    "ttft_p99": (report.get("ttft_ms") or {}).get("p99", 0.0),
                    "errors": report["requests"]["failed"] + report["requests"]["error_responses"],
                }
                rows[name].append(row)
                print(f"round {round_number} {name:9} {row['rps']:7.1f} req/s  p50 {row['p50']:7.1f} ms  p99 {row['p99']:7.1f} ms"
                      f"  TTFT p99 {row['ttft_p99']:7.1f} ms  errors {row['errors']}", flush=True)
        with urllib.request.urlopen(f"http://127.0.0.1:{gateways['shadowed'][1]}/admin/versions", timeout=5) as response:
            versions = json.load(response)
        shadow = versions["models"][0]["shadow"]

        def median(name, key):
            return statistics.median(row[key] for row in rows[name])

        print()
        print(f"scenario {args.scenario}, duration x{args.duration_scale}, rate x{args.rate_scale}, {args.rounds} rounds, profile {args.profile}")
        print("| gateway | req/s | p50 ms | p99 ms | TTFT p99 ms |")
        print("|---|---|---|---|---|")
        for name in ("baseline", "shadowed"):
            print(f"| {name} | {median(name, 'rps'):.1f} | {median(name, 'p50'):.1f} | {median(name, 'p99'):.1f} | {median(name, 'ttft_p99'):.1f} |")
        print(f"shadowed/baseline: p99 {median('shadowed', 'p99') / median('baseline', 'p99'):.3f}, "
              f"TTFT p99 {median('shadowed', 'ttft_p99') / max(median('baseline', 'ttft_p99'), 1e-9):.3f}")
        print(f"copies: {shadow['requests']} answered by the candidate ({shadow['succeeded']} 2xx, {shadow['failed']} failed), "
              f"{shadow['skipped']} skipped; candidate p99 {shadow['p99']}")
        print(f"raw: {out}")
        if args.check:
            errors = sum(row["errors"] for name in rows for row in rows[name])
            if errors or shadow["skipped"] or shadow["succeeded"] != shadow["requests"] or shadow["requests"] == 0:
                sys.exit(f"shadow.py --check: {errors} client errors; copies {shadow['requests']} answered, "
                         f"{shadow['succeeded']} succeeded, {shadow['skipped']} skipped")
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    main()
