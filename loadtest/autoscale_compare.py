"""Figures of one closed-loop run (loadtest/autoscale.sh), and what two common autoscalers
would have done with the same arrivals.

Usage: autoscale_compare.py REPORT.json SCENARIO DURATION_SCALE TARGET STARTUP_DELAY

Sluice's figures are measured: the gateway's decisions and replicas in rotation (sampled each
second from /readyz), the actuator's events, and the client's per-second TTFT p95.

The others are simulated on the run's arrival trace (requests sent per second), with their
documented rules, the same start-up delay, and a fluid model of the fleet (each replica serves
CAPACITY requests/s, the environment variable, default 17: what four routing-bench replicas
saturate at on chat-steady, 68/s):
  - HPA on CPU, on the assumption most favourable to it: CPU utilization tracks load exactly
    (busy fraction = arrivals / (replicas x CAPACITY), capped at 100%), target 70%, metrics
    averaged over 15 s (metrics-server), a sync every 15 s, tolerance 0.1, scale-up at most
    max(4 pods, 100%) per sync, scale-down after the 300 s stabilization window.
  - KEDA on queue length (e.g. vllm:num_requests_waiting, target 5 per replica as
    AverageValue): polled every 30 s, then the HPA above on that metric (15 s sync, tolerance,
    300 s scale-down stabilization); the queue grows by arrivals beyond the ready capacity.
"""
import json
import math
import os
import sys


def duration_seconds(text):
    text = text.strip()
    for unit, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * scale
    return float(text)


def main():
    report_path, _scenario, _dscale, target_text, startup_text = sys.argv[1:6]
    report = json.load(open(report_path))
    target_ms = duration_seconds(target_text) * 1000
    startup = float(startup_text)
    capacity = float(os.environ.get("CAPACITY", "17"))
    timeline = sorted(report["timeline"], key=lambda p: p["second"])
    sent = {p["second"]: p["sent"] for p in timeline}
    ttft = {p["second"]: p.get("ttft_p95_ms") for p in timeline}
    seconds = max(sent) + 1
    arrivals = [sent.get(s, 0) for s in range(seconds)]
    base = sum(arrivals[2:10]) / max(1, len(arrivals[2:10]))
    surge = next((s for s in range(seconds) if arrivals[s] >= 2 * base and s > 2), None)
    surge_end = None
    if surge is not None:
        surge_rate = max(arrivals[surge:surge + 30] or [0])
        surge_end = next((s for s in range(surge + 5, seconds) if arrivals[s] < 1.5 * base), seconds)
    samples = {g["second"]: g["pools"].get("fleet", {}) for g in report.get("gateway") or []}
    initial = samples.get(0, {}).get("replicas", 2)
    events = report.get("scaling_events") or []

    print(f"`loadtest/autoscale.sh` on `{os.path.basename(report['scenario'])}`: TTFT p95 target {target_ms:.0f} ms, "
          f"start-up delay {startup:.0f} s, {initial} replicas to start with; surge at {surge} s "
          f"({base:.0f} → {max(arrivals):.0f} requests/s), back at {surge_end} s\n")
    if surge is None:
        print("no surge found in the arrivals")
        return

    # Sluice, measured.
    decided = next((s for s in sorted(samples) if s >= surge and (samples[s].get("desired") or 0) > initial), None)
    ready = sorted(e["second"] for e in events if e["action"] == "ready")
    first_ready = next((r for r in ready if r >= surge), None)
    back = None
    for s in range(decided or surge, seconds - 4):
        window = [ttft.get(t) for t in range(s, s + 5)]
        if all(v is not None and v <= target_ms for v in window):
            back = s
            break
    peak_ttft = max((ttft.get(s) or 0) for s in range(surge, surge_end or seconds))
    available = {s: samples[s].get("available", 0) for s in samples}
    enough = next((s for s in sorted(available) if s >= surge and available[s] * capacity >= surge_rate), None)
    drained_in_surge = [e for e in events if e["action"] == "drain" and surge <= e["second"] < (surge_end or seconds)]
    print("| | Sluice (measured) |")
    print("|---|---|")
    print(f"| first scale-out decision | {fmt(decided, surge)} |")
    print(f"| first new replica in rotation | {fmt(first_ready, surge)} |")
    print(f"| replicas enough for {surge_rate} req/s at {capacity:g}/replica | {fmt(enough, surge)} |")
    print(f"| client TTFT p95 back under target (5 s running) | {fmt(back, surge)} |")
    print(f"| peak per-second TTFT p95 during the surge | {peak_ttft:.0f} ms |")
    print(f"| peak replicas | {max(list(available.values()) or [0])} |")
    print(f"| replicas removed during the surge | {len(drained_in_surge)} |")
    print()
    print("Replicas in rotation / desired over time (every 5 s):\n")
    print("| second | " + " | ".join(str(s) for s in range(0, seconds, 5)) + " |")
    print("|---|" + "---|" * len(range(0, seconds, 5)))
    print("| in rotation | " + " | ".join(str(samples.get(s, {}).get("available", "")) for s in range(0, seconds, 5)) + " |")
    print("| desired | " + " | ".join(str(samples.get(s, {}).get("desired", "")) for s in range(0, seconds, 5)) + " |")
    print("| arrivals/s | " + " | ".join(str(arrivals[s]) for s in range(0, seconds, 5)) + " |")
    print()

    # The simulated autoscalers.
    # Their sync and polling clocks run independently of the surge: every phase is tried, and
    # the median and the worst are shown.
    hpa = [simulate(arrivals, initial, startup, capacity, "hpa-cpu", offset) for offset in range(15)]
    keda = [simulate(arrivals, initial, startup, capacity, "keda-queue", offset) for offset in range(30)]
    print("Simulated on the same arrivals (fluid model, see autoscale_compare.py; median / worst over the phases of their clocks):\n")
    print("| | HPA on CPU (70%) | KEDA on queue length (5/replica) |")
    print("|---|---|---|")
    for label, key in (("first scale-out decision", "decided"), ("first new replica in rotation", "first_ready"),
                       (f"replicas enough for {surge_rate} req/s", "enough"), ("peak replicas", "peak"),
                       ("peak queue (fluid model)", "peak_queue")):
        def cell(results):
            values = [r[key] for r in results]
            if key in ("peak", "peak_queue"):
                return f"{sorted(values)[len(values) // 2]:.0f} / {max(values):.0f}"
            known = sorted(v - surge for v in values if v is not None)
            if len(known) < len(values):
                worst = "never"
            else:
                worst = f"+{known[-1]:.0f} s"
            if not known or len(known) <= len(values) // 2:
                return f"never / {worst}"
            return f"+{known[len(values) // 2]:.0f} s / {worst}"
        print(f"| {label} | {cell(hpa)} | {cell(keda)} |")


def fmt(second, surge):
    if second is None:
        return "never (within the run)"
    return f"{second - surge:+.0f} s ({second:.0f} s)"


def simulate(arrivals, initial, startup, capacity, kind, offset=0):
    """Seconds-step simulation of an HPA-style controller on one metric; `offset` shifts its
    sync (and KEDA's polling) clock against the trace."""
    seconds = len(arrivals)
    replicas_ready = [initial] * seconds
    pending = []  # (ready_at, count)
    current_desired = initial
    history = []  # (second, recommendation) for the scale-down stabilization window
    queue = 0.0
    queue_series = []
    util_series = []
    decided = first_ready = enough = None
    surge_rate = None
    base = sum(arrivals[2:10]) / max(1, len(arrivals[2:10]))
    surge = next((s for s in range(seconds) if arrivals[s] >= 2 * base and s > 2), None)
    if surge is not None:
        surge_rate = max(arrivals[surge:surge + 30])
    ready = initial
    last_poll_queue = 0.0
    for s in range(seconds):
        for item in [p for p in pending if p[0] <= s]:
            ready += item[1]
            pending.remove(item)
            if first_ready is None and surge is not None and s >= surge:
                first_ready = s
        replicas_ready[s] = ready
        served = ready * capacity
        queue = max(0.0, queue + arrivals[s] - served)
        queue_series.append(queue)
        util_series.append(min(1.0, arrivals[s] / max(1e-9, ready * capacity)))
        if enough is None and surge is not None and s >= surge and ready * capacity >= surge_rate:
            enough = s
        if kind == "keda-queue" and (s + offset) % 30 == 0:
            last_poll_queue = queue
        if (s + offset) % 15 != 0 or s == 0:
            continue
        if kind == "hpa-cpu":
            window = util_series[max(0, s - 15):s]
            metric = sum(window) / len(window)
            ratio = metric / 0.7
        else:
            metric = last_poll_queue / max(1, ready)
            ratio = metric / 5.0
        if abs(ratio - 1) <= 0.1:
            recommendation = current_desired
        else:
            recommendation = max(1, math.ceil(ready * ratio)) if ratio > 0 else 1
        history.append((s, recommendation))
        history = [(t, r) for t, r in history if s - t < 300]
        if recommendation > current_desired:
            step = max(4, current_desired)  # scale-up policy: max(4 pods, 100%) per period
            new = min(recommendation, current_desired + step)
        else:
            new = max(max(r for _, r in history), recommendation)  # 300 s stabilization
            new = min(new, current_desired)
        if new > current_desired:
            pending.append((s + startup, new - current_desired))
            if decided is None and surge is not None and s >= surge:
                decided = s
        elif new < current_desired:
            ready -= current_desired - new
        current_desired = new
    return {"decided": decided, "first_ready": first_ready, "enough": enough, "peak": max(replicas_ready),
            "peak_queue": max(queue_series)}


if __name__ == "__main__":
    main()
