"""Soak: a steady load at 70% of capacity for a long time, the gateway's memory and files sampled.

Usage: python3 loadtest/soak.py BIN_DIR [--duration SECONDS] [--smoke]   (default 600 s)

`--smoke` (what CI runs, for a few seconds) checks the run's failures and descriptors only: a
warm-up of a few seconds says nothing about memory growth.

Two `sluice-replica` processes (a fixed clock: 20 ms to the first token, 5 ms a token) behind
`sluice serve`. Capacity is measured first, closed-loop (`wrk -t1 -c64`, 5 s, a non-streamed
chat completion of 4 tokens); then `sluice-load` sends an open-loop chat mix (a third
streamed) at 70% of it for the duration, while the gateway's RSS and open file descriptors
are read from /proc every 5 s. Warm-up is the first 10% of the run. Prints the samples' summary
and exits non-zero when RSS grew more than 5% after warm-up, the gateway holds more descriptors
6 s after the load than before it (idle upstream connections close after 4 s; a leak stays),
or more than 0.1% of requests failed.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "python"))
from localnet import free_port, wait_port  # noqa: E402


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main(bin_dir, duration, smoke):
    work = tempfile.mkdtemp(prefix="sluice-soak-")
    ports = [free_port() for _ in range(2)]
    replicas = [subprocess.Popen([os.path.join(bin_dir, "sluice-replica"), "--port", str(p), "--id", f"r{i}", "--ttft-ms", "20", "--itl-ms", "5"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i, p in enumerate(ports)]
    port, admin = free_port(), free_port()
    config = os.path.join(work, "sluice.yaml")
    with open(config, "w") as f:
        f.write(f"""listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
log_level: warning
pools:
  - name: chat
    match: {{ paths: ["/v1/*"] }}
    replicas: [{", ".join(f'"127.0.0.1:{p}"' for p in ports)}]
    routing: {{ policy: least-queue }}
""")
    gateway = subprocess.Popen([os.path.join(bin_dir, "sluice"), "serve", "--config", config],
                               stdout=open(os.path.join(work, "sluice.log"), "w"), stderr=subprocess.STDOUT)
    try:
        for p in ports + [port, admin]:
            wait_port(p)
        lua = os.path.join(work, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    'wrk.body = \'{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hello there"}]}\'\n')
        out = subprocess.run(["wrk", "-t1", "-c64", "-d5s", "-s", lua, f"http://127.0.0.1:{port}/v1/chat/completions"],
                             capture_output=True, text=True, check=True).stdout
        capacity = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec:")))
        rate = max(1, int(capacity * 0.7))
        scenario = os.path.join(work, "soak.yaml")
        with open(scenario, "w") as f:
            f.write(f"""name: soak
seed: 7
timeout: 10s
phases:
  - duration: {int(duration)}s
    rate: {rate}
workloads:
  - weight: 1
    chat: {{ users: 64, system_prompts: 4, system_prompt_words: 40, user_words: 12, turns: 4, stream_fraction: 0.33, max_tokens: 4 }}
""")
        time.sleep(6)  # the calibration's connections close
        fds_before = fds(gateway.pid)
        samples = []
        stop = threading.Event()

        def sample():
            started = time.time()
            while not stop.is_set():
                samples.append((time.time() - started, rss_mb(gateway.pid), fds(gateway.pid)))
                stop.wait(5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        report_dir = os.path.join(work, "report")
        subprocess.run([os.path.join(bin_dir, "sluice-load"), "run", scenario, "--target", f"http://127.0.0.1:{port}",
                        "--out", report_dir, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        stop.set()
        sampler.join()
        time.sleep(6)
        fds_after = fds(gateway.pid)
        with open(os.path.join(report_dir, "report.json")) as f:
            report = json.load(f)
        requests = report["requests"]
        sent = requests["sent"]
        failed = requests["failed"] + requests["error_responses"]

        warm = [s for s in samples if s[0] >= duration * 0.1] or samples
        rss_start, rss_end = warm[0][1], warm[-1][1]
        rss_peak = max(s[1] for s in warm)
        fd_low, fd_high = min(s[2] for s in warm), max(s[2] for s in warm)
        growth = (rss_end - rss_start) / rss_start if rss_start else 0
        print(f"capacity {capacity:,.0f} req/s (wrk -c64, 5 s); soak at {rate:,} req/s for {duration:.0f} s: {sent:,} requests, {failed:,} failed")
        print(f"RSS after warm-up {rss_start:.1f} MB -> {rss_end:.1f} MB ({growth * 100:+.1f}%), peak {rss_peak:.1f} MB; "
              f"descriptors {fds_before} before, {fd_low}-{fd_high} under load, {fds_after} after; {len(samples)} samples")
        problems = []
        if growth > 0.05 and not smoke:
            problems.append(f"RSS grew {growth * 100:.1f}% after warm-up")
        if fds_after > fds_before:
            problems.append(f"{fds_after - fds_before} more descriptors after the load than before it")
        if sent == 0 or failed > sent * 0.001:
            problems.append(f"{failed} of {sent} requests failed")
        if problems:
            raise SystemExit("soak: " + "; ".join(problems))
        print("soak ok")
    finally:
        for process in [gateway] + replicas:
            process.terminate()
        for process in [gateway] + replicas:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    duration = 600.0
    if "--duration" in sys.argv:
        duration = float(sys.argv[sys.argv.index("--duration") + 1])
    main(sys.argv[1], duration, "--smoke" in sys.argv)
