"""Chaos under load: replicas killed, hung and restarted while clients keep sending.

Usage: python3 loadtest/chaos.py BIN_DIR [--scale S]   (S multiplies every phase; default 1)

Three `sluice-replica` processes behind one `sluice serve` (active checks every 500 ms, two
failures out, one pass back; `retry: { idempotent: true }`, as an inference pool without side
effects is configured), six client threads sending non-streamed chat completions and two
reading streamed ones, in phases:
  steady    all replicas up;
  killed    replica 1 killed (SIGKILL): requests on it are sent again (non-streamed) or end with
            an SSE error event and the stream's end (streamed);
  restarted replica 1 started again on its port: back in rotation within one check interval;
  hung      replica 2 stopped (SIGSTOP): out of rotation within two check intervals;
  resumed   replica 2 continued (SIGCONT).
Prints a table and exits non-zero when a non-streamed request failed, a stream was cut without
its end, the hung replica stayed in longer than two intervals plus a check's timeout, or the
restarted one took longer than one interval plus a round's slack to come back.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "python"))
from localnet import free_port, wait_port  # noqa: E402

INTERVAL = 0.5
TIMEOUT = 0.2


def start_replica(bin_dir, port, name):
    return subprocess.Popen([os.path.join(bin_dir, "sluice-replica"), "--port", str(port), "--id", name, "--ttft-ms", "20", "--itl-ms", "10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pools(admin):
    connection = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    connection.request("GET", "/admin/pools")
    body = json.loads(connection.getresponse().read())
    connection.close()
    return {r["id"]: r for r in body["pools"][0]["replicas"]}


def main(bin_dir, scale):
    work = tempfile.mkdtemp(prefix="sluice-chaos-")
    ports = [free_port() for _ in range(3)]
    replicas = [start_replica(bin_dir, port, f"r{i}") for i, port in enumerate(ports)]
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
    timeouts: {{ connect: 500ms }}
    health:
      check: {{ path: /health, interval: {int(INTERVAL * 1000)}ms, timeout: {int(TIMEOUT * 1000)}ms, unhealthy_after: 2, healthy_after: 1, jitter: 0 }}
    retry: {{ idempotent: true, min_retries: 16 }}
""")
    log = open(os.path.join(work, "sluice.log"), "w")
    gateway = subprocess.Popen([os.path.join(bin_dir, "sluice"), "serve", "--config", config], stdout=log, stderr=subprocess.STDOUT)
    results = {"plain": {}, "stream": {}}
    lock = threading.Lock()
    stop = threading.Event()

    def count(kind, outcome):
        with lock:
            results[kind][outcome] = results[kind].get(outcome, 0) + 1

    def plain():
        body = json.dumps({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        while not stop.is_set():
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                connection.close()
                count("plain", str(response.status))
            except (OSError, http.client.HTTPException) as error:
                count("plain", f"error {type(error).__name__}")

    def stream():
        body = json.dumps({"model": "m", "max_tokens": 40, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        while not stop.is_set():
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
                response = connection.getresponse()
                text = response.read().decode()  # raises IncompleteRead when the stream is cut
                connection.close()
                if response.status != 200:
                    count("stream", str(response.status))
                elif "data: [DONE]" in text:
                    count("stream", "complete")
                elif "event: error" in text:
                    count("stream", "ended with an error event")
                else:
                    count("stream", "ended without [DONE]")
            except (OSError, http.client.HTTPException) as error:
                count("stream", f"cut ({type(error).__name__})")

    failures = []
    timings = {}
    try:
        for p in ports:
            wait_port(p)
        wait_port(admin)
        deadline = time.time() + 10
        while time.time() < deadline and not all(r["available"] for r in pools(admin).values()):
            time.sleep(0.05)
        threads = [threading.Thread(target=plain) for _ in range(6)] + [threading.Thread(target=stream) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(3 * scale)  # steady

        replicas[1].send_signal(signal.SIGKILL)
        replicas[1].wait()
        time.sleep(3 * scale)  # killed

        replicas[1] = start_replica(bin_dir, ports[1], "r1")
        started = time.time()
        while time.time() - started < 10 and not pools(admin)[f"127.0.0.1:{ports[1]}"]["available"]:
            time.sleep(0.02)
        timings["restarted replica back after"] = time.time() - started
        time.sleep(2 * scale)  # restarted

        replicas[2].send_signal(signal.SIGSTOP)
        stopped = time.time()
        while time.time() - stopped < 10 and pools(admin)[f"127.0.0.1:{ports[2]}"]["available"]:
            time.sleep(0.02)
        timings["hung replica out after"] = time.time() - stopped
        time.sleep(2 * scale)  # hung
        replicas[2].send_signal(signal.SIGCONT)
        time.sleep(2 * scale)  # resumed
        stop.set()
        for thread in threads:
            thread.join(timeout=15)

        print(f"{'requests':<12} outcome counts")
        for kind in ("plain", "stream"):
            print(f"{kind:<12} {json.dumps(results[kind], sort_keys=True)}")
        for name, value in timings.items():
            print(f"{name}: {value:.2f} s")
        bad_plain = {k: v for k, v in results["plain"].items() if k != "200"}
        if bad_plain:
            failures.append(f"non-streamed requests failed: {bad_plain}")
        cut = {k: v for k, v in results["stream"].items() if k.startswith("cut") or k == "ended without [DONE]"}
        if cut:
            failures.append(f"streams cut without their end: {cut}")
        if results["plain"].get("200", 0) < 50 or sum(results["stream"].values()) < 5:
            failures.append("too few requests were sent to mean anything")
        if timings["hung replica out after"] > 2 * INTERVAL + TIMEOUT + 0.3:
            failures.append(f"the hung replica stayed in rotation {timings['hung replica out after']:.2f} s")
        if timings["restarted replica back after"] > INTERVAL + TIMEOUT + 0.3:
            failures.append(f"the restarted replica came back after {timings['restarted replica back after']:.2f} s")
    finally:
        stop.set()
        for process in replicas:
            try:
                process.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
        for process in [gateway] + replicas:
            process.terminate()
        for process in [gateway] + replicas:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
    if failures:
        with open(os.path.join(work, "sluice.log")) as f:
            print(f.read()[-3000:])
        raise SystemExit("chaos: " + "; ".join(failures))
    print("chaos ok")


if __name__ == "__main__":
    scale = 1.0
    if "--scale" in sys.argv:
        scale = float(sys.argv[sys.argv.index("--scale") + 1])
    main(sys.argv[1], scale)
