"""Figures of one closed-loop run (loadtest/autoscale.sh), and the same arrivals under an HPA on
CPU, KEDA on the request backlog and an oracle, every policy within Sluice's replica caps.

Usage: autoscale_compare.py REPORT.json SCENARIO DURATION_SCALE TARGET STARTUP_DELAY MIN MAX
Environment: CAPACITY, requests/s one replica serves (default 17: four routing-bench replicas
saturate near 68/s on chat-steady).

Sluice (measured) is read from the report: the gateway's desired count and replicas in rotation
(/readyz, sampled each second), the actuator's start/ready/stop events, the client's TTFT. The
report keeps TTFT percentiles per second and per run, not per request, so the measured share of
requests under the target is a range: at least 95% of each second whose p95 is under it, and
what the run's percentiles allow.

The other rows share one fluid model on the run's arrival trace (requests sent each second,
spread evenly over it): a ready replica serves CAPACITY requests/s; requests beyond the ready
capacity wait in one FIFO queue; a request's TTFT is a base (the median per-second TTFT p95
before the surge) plus its wait, and it is in service for SERVICE s (the median per-second
latency p50 before the surge; only KEDA's metric uses it). After the trace the queue drains with
the replicas then provisioned. "Sluice (model)" replays Sluice's measured replicas in rotation
through the model: the distance between its row and the measured one is the model's error.
Replica-seconds count a replica from the decision that starts it (start-up included) to its
removal, within the trace. Every policy starts with MIN replicas and stays within [MIN, MAX].

Each peer by its documented rules; what each modelling choice favours:
  - HPA on CPU: target 70% of the pod's CPU request; utilization uncapped (a CPU limit above the
    request). CPU tracks the arrival rate exactly (arrivals / (ready x CAPACITY)) and the HPA
    reads the mean of the 15 s before each sync with no metrics-server lag: favours the HPA (an
    inference server's CPU stays nearly flat while its GPU saturates). Sync every 15 s, tolerance
    0.1, desired = ceil(ratio x pods counted); scale-up at most max(4 pods, 100%) per 15 s;
    scale-down to the highest recommendation of the last 300 s. A new pod is set aside (0% on a
    scale-up) until ready for one 15 s metric window (replica_calculator.go's
    cpu-initialization-period rule): its documented behaviour, and it holds the HPA back.
  - KEDA on the backlog, running + waiting summed over the fleet (e.g. vLLM's
    num_requests_running + num_requests_waiting), AverageValue target 0.7 x CAPACITY x SERVICE
    per replica: the backlog one replica holds at 70% of its throughput, the HPA's operating
    point. KEDA's metrics server queries the trigger on each HPA sync (every 15 s, no
    useCachedMetrics: kedacore/keda#2282); the value is the backlog at that second (no Prometheus
    scrape lag: favours KEDA); desired = ceil(backlog / target) unless within the tolerance, then
    the HPA's behaviour above. pollingInterval (30 s) only drives activation (0 <-> 1), and
    MIN >= 1, so it plays no part.
  - The HPA's sync clock is independent of the trace: all 15 phases run (median [min-max]).
  - A peer's pod starts the second it decides and is ready STARTUP_DELAY s later: favours the
    peers (Sluice's measured times include its actuator's 1 s polling).
  - Oracle: knows the arrivals; ready replicas each second = ceil(arrivals / CAPACITY), the fewest
    with which the model never queues (100% of the model's capacity: less would only add replicas
    the model never uses); each is started STARTUP_DELAY s ahead and billed from then.
  - One FIFO queue: in the real fleet a backlog stays on the replicas it was sent to while
    least-queue routing sends new requests to new replicas, so more requests are fast and the
    slowest are slower. The model understates the share under the target, and the worst TTFT, of
    every policy that lets a backlog build (all but the oracle); the modelled rows compare like
    for like.
  - A constant base TTFT (a busy replica prefills more slowly): favours the policies that run
    replicas closest to capacity.
  - The trace is one run of the scenario: scale-in after it (the HPA's 300 s window, Sluice's
    scale_down_delay) is not billed.
"""
import bisect
import json
import math
import os
import statistics
import sys

SYNC, TOLERANCE, UTILIZATION, DOWN_WINDOW, METRIC_WINDOW = 15, 0.1, 0.7, 300, 15


def duration_seconds(text):
    text = text.strip()
    for unit, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * scale
    return float(text)


class Fluid:
    """One FIFO queue in front of the fleet, stepped STEPS times a second; `started` is the
    cumulative count of requests that have begun service after each step."""
    STEPS = 100

    def __init__(self, run):
        self.arrivals, self.capacity, self.lag = run["arrivals"], run["capacity"], round(run["service"] * self.STEPS)
        self.arrived, self.started, self.second = 0.0, [0.0], 0

    def run_second(self, ready):
        rate_in = (self.arrivals[self.second] if self.second < len(self.arrivals) else 0) / self.STEPS
        rate_out = ready * self.capacity / self.STEPS
        for _ in range(self.STEPS):
            self.arrived += rate_in
            self.started.append(min(self.arrived, self.started[-1] + rate_out))
        self.second += 1
        return self.arrived - self.started[max(0, len(self.started) - 1 - self.lag)]  # running + waiting

    def ttfts(self, ready_after, base_ms):
        """Each second's requests' TTFTs (ms), the queue drained with `ready_after` replicas."""
        while self.second < len(self.arrivals) or self.started[-1] < self.arrived - 1e-6:
            self.run_second(ready_after)
        out, before = [], 0
        for s, count in enumerate(self.arrivals):
            starts = [bisect.bisect_left(self.started, before + j + 0.5) / self.STEPS for j in range(count)]
            out.append([base_ms + 1000 * max(0.0, t - s - (j + 0.5) / count) for j, t in enumerate(starts)])
            before += count
        return out


def controller(kind, phase, run):
    """An HPA syncing when (second + phase) % 15 == 0, on CPU ("cpu") or on KEDA's backlog ("keda")."""
    arrivals, capacity, lo, hi = run["arrivals"], run["capacity"], run["min"], run["max"]
    fluid, keda_target = Fluid(run), UTILIZATION * capacity * run["service"]
    pods = [-1e9] * lo  # the second each pod is ready; the first MIN have been ready for long
    provisioned, utilization, history, decisions = [], [], [], []
    for s in range(len(arrivals)):
        ready = sum(1 for r in pods if r <= s)
        provisioned.append(len(pods))
        utilization.append(arrivals[s] / (ready * capacity))
        backlog = fluid.run_second(ready)
        if s == 0 or (s + phase) % SYNC:
            continue
        spec = len(pods)
        if kind == "cpu":
            ratio = statistics.fmean(utilization[-METRIC_WINDOW:]) / UTILIZATION
            counted = sum(1 for r in pods if r + METRIC_WINDOW <= s)
            if ratio > 1 and counted < spec:  # pods set aside count as 0% on a scale-up
                adjusted = ratio * counted / spec
                rec = spec if abs(1 - adjusted) <= TOLERANCE or adjusted < 1 else math.ceil(ratio * counted)
            else:
                rec = spec if abs(1 - ratio) <= TOLERANCE else math.ceil(ratio * counted)
        else:
            rec = spec if abs(1 - backlog / (keda_target * spec)) <= TOLERANCE else math.ceil(backlog / keda_target)
        history = [(t, r) for t, r in history if s - t < DOWN_WINDOW] + [(s, rec)]
        new = min(max(spec, rec), max(r for _, r in history))  # scale-down stabilization
        if new > spec:
            new = min(new, max(spec + 4, 2 * spec))  # scale-up policy: max(4 pods, 100%) per 15 s
        new = max(lo, min(hi, new))
        if new > spec:
            pods += [s + run["startup"]] * (new - spec)
            decisions.append(s)
        del pods[new:]  # scale-in removes the newest pods
    return finish(run, fluid, provisioned, len(pods), decisions)


def oracle(run):
    lead = math.ceil(run["startup"])
    need = [max(run["min"], min(run["max"], math.ceil(a / run["capacity"]))) for a in run["arrivals"]]
    provisioned = [max(need[s:s + lead + 1]) for s in range(len(need))]  # started `lead` s ahead
    decisions = [s for s in range(1, len(need)) if provisioned[s] > provisioned[s - 1]]
    fluid = Fluid(run)
    for ready in need:
        fluid.run_second(ready)
    return finish(run, fluid, provisioned, need[-1], decisions, lead)


def finish(run, fluid, provisioned, ready_after, decisions, lead=0):
    """A policy's row; its first scale-out is its first decision from the surge's start on (the
    oracle's from `lead` s before: it starts replicas ahead)."""
    ttfts = fluid.ttfts(ready_after, run["base"])
    every = [t for waits in ttfts for t in waits]
    return {"replica_seconds": sum(provisioned), "peak": max(provisioned), "ttfts": ttfts,
            "share": sum(t <= run["target"] for t in every) / len(every),
            "first": next((d - run["surge"] for d in decisions if d >= run["surge"] - lead), None)}


def sluice_rows(run, samples, events, decided):
    """Sluice as measured, and its replicas in rotation replayed through the model."""
    seconds, initial = len(run["arrivals"]), run["min"]
    stops = {e["replica"]: e["second"] for e in events if e["action"] == "stop"}
    spans = [(min(e["second"], seconds), min(stops.get(e["replica"], seconds), seconds))
             for e in events if e["action"] == "start"]
    peak = max(initial + sum(1 for a, b in spans if a <= t < b) for t in [0] + [a for a, _ in spans])
    fluid, ready, backlog = Fluid(run), initial, []
    for s in range(seconds):
        ready = samples.get(s, {}).get("available", ready)
        backlog.append(fluid.run_second(ready))
    model = finish(run, fluid, [0], ready, [])
    model.update(replica_seconds=initial * seconds + sum(b - a for a, b in spans), peak=peak, backlog=backlog,
                 first=None if decided is None else decided - run["surge"])
    return dict(model, share=measured_share(run)), model


def measured_share(run):
    """Bounds on the share of requests whose TTFT was under the target, from what the report keeps."""
    counts = [(p["completed"] - p["errors"], p["ttft_p95_ms"]) for p in run["timeline"] if p.get("ttft_p95_ms") is not None]
    total = sum(n for n, _ in counts) or 1
    lo = sum(0.95 * n for n, v in counts if v <= run["target"]) / total
    hi = sum(n if v <= run["target"] else 0.95 * n for n, v in counts) / total
    for pct in (50, 90, 95, 99):
        value = (run["report"].get("ttft_ms") or {}).get(f"p{pct}")
        if value is not None and value <= run["target"]:
            lo = max(lo, pct / 100)
        elif value is not None:
            return lo, min(hi, pct / 100)
    return lo, hi


def cell(values, fmt):
    known = sorted(v for v in values if v is not None)
    if not known:
        return "none"
    mid = fmt(known[len(known) // 2]) + ("" if len(known) == len(values) else f" ({len(values) - len(known)} phases none)")
    return mid if known[0] == known[-1] else f"{mid} [{fmt(known[0])}–{fmt(known[-1])}]"


def fmt(second, surge):
    return "never (within the run)" if second is None else f"{second - surge:+.0f} s ({second:.0f} s)"


def main():
    report_path, _scenario, _dscale, target_text, startup_text, min_text, max_text = sys.argv[1:8]
    report = json.load(open(report_path))
    target_ms, startup = duration_seconds(target_text) * 1000, float(startup_text)
    capacity = float(os.environ.get("CAPACITY", "17"))
    timeline = sorted(report["timeline"], key=lambda p: p["second"])
    sent = {p["second"]: p["sent"] for p in timeline}
    ttft = {p["second"]: p.get("ttft_p95_ms") for p in timeline}
    seconds = max(sent) + 1
    arrivals = [sent.get(s, 0) for s in range(seconds)]
    calm = sum(arrivals[2:10]) / max(1, len(arrivals[2:10]))
    surge = next((s for s in range(seconds) if arrivals[s] >= 2 * calm and s > 2), None)
    samples = {g["second"]: g["pools"].get("fleet", {}) for g in report.get("gateway") or []}
    initial = samples.get(0, {}).get("replicas", int(min_text))
    events = sorted(report.get("scaling_events") or [], key=lambda e: e["second"])
    print(f"`loadtest/autoscale.sh` on `{os.path.basename(report['scenario'])}` ({report.get('started_at', '?')}): "
          f"TTFT p95 target {target_ms:.0f} ms, start-up delay {startup:g} s, {initial} replicas to start with, "
          f"{min_text} to {max_text} replicas; ", end="")
    if surge is None:
        print("no surge found in the arrivals")
        return
    surge_rate = max(arrivals[surge:surge + 30])
    surge_end = next((s for s in range(surge + 5, seconds) if arrivals[s] < 1.5 * calm), seconds)
    print(f"surge at {surge} s ({calm:.0f} → {surge_rate} requests/s), back at {surge_end} s\n")

    # Sluice, measured.
    decided = next((s for s in sorted(samples) if s >= surge and (samples[s].get("desired") or 0) > initial), None)
    first_ready = next((e["second"] for e in events if e["action"] == "ready" and e["second"] >= surge), None)
    back = next((s for s in range(decided or surge, seconds - 4)
                 if all(ttft.get(t) is not None and ttft[t] <= target_ms for t in range(s, s + 5))), None)
    enough = next((s for s in sorted(samples) if s >= surge and samples[s].get("available", 0) * capacity >= surge_rate), None)
    drained = [e for e in events if e["action"] == "drain" and surge <= e["second"] < surge_end]
    print("| | Sluice (measured) |\n|---|---|")
    print(f"| first scale-out decision | {fmt(decided, surge)} |")
    print(f"| first new replica in rotation | {fmt(first_ready, surge)} |")
    print(f"| replicas enough for {surge_rate} req/s at {capacity:g}/replica | {fmt(enough, surge)} |")
    print(f"| client TTFT p95 back under target (5 s running) | {fmt(back, surge)} |")
    print(f"| peak per-second TTFT p95 during the surge | {max((ttft.get(s) or 0) for s in range(surge, surge_end)):.0f} ms |")
    print(f"| replicas removed during the surge | {len(drained)} |\n")

    # Every policy on the same arrivals, within the same caps.
    pre = [p for p in timeline if p["second"] < surge]
    run = {"arrivals": arrivals, "capacity": capacity, "min": int(min_text), "max": int(max_text), "startup": startup,
           "surge": surge, "target": target_ms, "report": report, "timeline": timeline,
           "base": statistics.median(p["ttft_p95_ms"] for p in pre if p.get("ttft_p95_ms") is not None),
           "service": statistics.median(p["p50_ms"] for p in pre) / 1000}
    keda_target = UTILIZATION * capacity * run["service"]
    measured, model = sluice_rows(run, samples, events, decided)
    rows = [("Sluice (measured)", [measured]), ("Sluice (its replicas in rotation, model)", [model]),
            ("HPA on CPU (70% of request, model)", [controller("cpu", phase, run) for phase in range(SYNC)]),
            (f"KEDA on backlog ({keda_target:.1f}/replica, model)", [controller("keda", phase, run) for phase in range(SYNC)]),
            ("oracle (model)", [oracle(run)])]
    print(f"Every policy on the same {seconds} s of arrivals, {min_text} to {max_text} replicas; model rows: "
          f"{capacity:g} requests/s per ready replica, TTFT = {run['base']:.0f} ms + queue wait; HPA and KEDA: "
          f"median [min–max] over the {SYNC} phases of their sync clock:\n")
    print("| policy | replica-seconds | peak replicas | share of requests under target | first scale-out |")
    print("|---|---|---|---|---|")
    for name, results in rows:
        share = results[0]["share"]
        share = (f"{share[0]:.0%}–{share[1]:.0%} (bounds)" if isinstance(share, tuple)
                 else cell([r["share"] for r in results], lambda v: f"{v:.0%}"))
        print(f"| {name} | {cell([r['replica_seconds'] for r in results], lambda v: f'{v:.0f}')} "
              f"| {cell([r['peak'] for r in results], str)} | {share} "
              f"| {cell([r['first'] for r in results], lambda v: f'{v:+d} s')} |")

    # How far the model is from the measurement, on Sluice's own replicas.
    pairs = [(ttft[s], sorted(w)[math.ceil(0.95 * len(w)) - 1]) for s, w in enumerate(model["ttfts"])
             if w and ttft.get(s) is not None]
    in_flight = [g["in_flight"] for g in samples.values() if g.get("in_flight") is not None]
    print(f"\nModel check on Sluice's replicas: per-second TTFT p95 under the target in "
          f"{sum(m <= target_ms for m, _ in pairs)} of {len(pairs)} seconds measured, "
          f"{sum(x <= target_ms for _, x in pairs)} modelled ({sum((m <= target_ms) == (x <= target_ms) for m, x in pairs)} "
          f"agree); worst per-second TTFT p95 {max(m for m, _ in pairs):.0f} ms measured, "
          f"{max(x for _, x in pairs):.0f} ms modelled; peak backlog {max(in_flight or [0])} in flight measured, "
          f"{max(model['backlog']):.0f} modelled.\n")
    print("Assumptions, and what each favours (more in loadtest/autoscale_compare.py):\n")
    print(f"- Same start ({initial} replicas), caps ({min_text} to {max_text}) and start-up delay ({startup:g} s) for every "
          "policy; peers start a pod the second they decide (Sluice's actuator polls each second): favours the peers.")
    print("- HPA: CPU tracks arrivals exactly, uncapped against the pod's request, no metrics-server lag: favours the HPA. "
          "Sync 15 s, tolerance 0.1, scale-up max(4 pods, 100%) per 15 s, 300 s scale-down window, new pods set "
          "aside for one 15 s metric window after they are ready (documented rules).")
    print(f"- KEDA: running + waiting read at each 15 s HPA sync, no scrape lag: favours KEDA; target {keda_target:.1f} "
          f"per replica = 70% of {capacity:g} requests/s x {run['service']:.2f} s in service, the HPA's operating point; "
          "pollingInterval only activates from 0.")
    print(f"- Oracle: ceil(arrivals / {capacity:g}) ready every second, started {math.ceil(startup)} s ahead and billed "
          "from then: the fewest replicas with which the model never queues.")
    print("- One FIFO queue for the fleet: a real backlog stays on the replicas it was sent to while new requests go "
          "to new ones, so the model understates the share under target for every policy that lets a backlog "
          "build (see Sluice measured vs model); compare model rows with each other.")
    print("- Replica-seconds cover the trace only: scale-in after it (HPA 300 s window, Sluice's scale_down_delay) is not billed.")


if __name__ == "__main__":
    main()
