"""Three `sluice serve` processes sharing one redis-server, hammered by one tenant for ~9 s.

Run by scripts/test.sh with the directory of the built binaries as the only argument.
- shared (0-3 s), all traffic through the first gateway: it admits about rate x elapsed + burst
  (at least 0.8 of it), which its local share (a third) could not: so this fails without
  Redis; and at most that (x1.01);
- Redis killed (3-6 s), traffic through all three: each falls back to its share
  (on_backend_failure: local), so the three admit at most (rate x elapsed + burst) again, and
  every answer is still 200 or 429;
- Redis restarted (6-9 s), the first gateway again: shared again, at least 0.6 of the
  allowance (it waits out the 250 ms backoff on its share first) and at most all of it.
Exits non-zero with the reason on any violation.
"""
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from localnet import free_port, wait_port

RATE, BURST = 600, 20  # per minute: 10 a second


def start_redis(port):
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process


def main(bin_dir):
    work = tempfile.mkdtemp(prefix="sluice-shared-")
    procs = []
    redis_port, replica_port = free_port(), free_port()
    redis = start_redis(redis_port)
    procs.append(subprocess.Popen([os.path.join(bin_dir, "sluice-replica"), "--port", str(replica_port), "--id", "r1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with open(os.path.join(work, "keys"), "w") as f:
        f.write("sk-shared\n")
    ports = []
    logs = []
    for i in range(3):
        port, admin = free_port(), free_port()
        config = os.path.join(work, f"g{i}.yaml")
        with open(config, "w") as f:
            f.write(f"""listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
log_level: warning
pools:
  - {{ name: chat, match: {{ paths: ["/v1/*"] }}, replicas: ["127.0.0.1:{replica_port}"] }}
limits:
  backend: redis://127.0.0.1:{redis_port}
  on_backend_failure: local
  backend_timeout: 50ms
  instances: 3
  tenants:
    - {{ name: shared, keys_file: {work}/keys, requests_per_minute: {RATE}, burst: {BURST} }}
""")
        log = open(os.path.join(work, f"g{i}.log"), "w")
        logs.append(log.name)
        procs.append(subprocess.Popen([os.path.join(bin_dir, "sluice"), "serve", "--config", config],
                                      stdout=log, stderr=subprocess.STDOUT))
        ports.append(port)
    try:
        wait_port(replica_port)
        for port in ports:
            wait_port(port)
        body = '{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
        results = []  # (time, status)
        lock = threading.Lock()
        stop = time.time() + 9.0

        phase_of = {"now": "shared"}

        def hammer(port):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            while time.time() < stop:
                if port != ports[0] and phase_of["now"] != "redis down":
                    time.sleep(0.01)  # the other gateways carry traffic only while Redis is down
                    continue
                try:
                    connection.request("POST", "/v1/chat/completions", body,
                                       {"content-type": "application/json", "authorization": "Bearer sk-shared"})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as error:
                    status = f"error {error}"
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                with lock:
                    results.append((time.time(), status))
                time.sleep(0.005)

        started = time.time()
        threads = [threading.Thread(target=hammer, args=(port,)) for port in ports for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        redis.send_signal(signal.SIGKILL)
        redis.wait()
        killed = time.time()
        phase_of["now"] = "redis down"
        time.sleep(3.0)
        phase_of["now"] = "restarted"
        redis = start_redis(redis_port)
        restarted = time.time()
        for thread in threads:
            thread.join()

        def phase(start, end):
            window = [status for at, status in results if start <= at < end]
            return window.count(200), [s for s in window if s not in (200, 429)], len(window)

        failures = []
        for name, start, end, floor in [("shared", started, killed, 0.8), ("redis down", killed, restarted, 0.0),
                                        ("restarted", restarted, stop + 1, 0.6)]:
            admitted, others, total = phase(start, end)
            allowance = (RATE / 60.0) * (end - start if end < stop else stop - start) + BURST
            print(f"{name}: {admitted} admitted of {total} in {min(end, stop) - start:.1f} s (allowance {allowance:.0f}, "
                  f"at least {floor * allowance:.0f}); other answers: {len(others)}")
            # Answers are stamped when they arrive: each of the client threads may have one
            # request decided in the phase before and answered in this one.
            if admitted > allowance * 1.01 + len(threads):
                failures.append(f"{name}: admitted {admitted} > {allowance:.0f}")
            if admitted < floor * allowance:
                failures.append(f"{name}: admitted {admitted} < {floor * allowance:.0f}: one gateway alone admits a third")
            if others:
                failures.append(f"{name}: answers other than 200/429: {sorted(set(map(str, others)))[:3]}")
            if total < 50:
                failures.append(f"{name}: only {total} requests sent")
        # The outage is said in each gateway's log that saw it, and not once per request.
        warnings = []
        for name in logs:
            with open(name) as f:
                warnings.append(sum("the limits backend is failing" in line for line in f))
        print(f"backend-failure warnings logged per gateway: {warnings}")
        if min(warnings) < 1 or max(warnings) > 3:
            failures.append(f"backend-failure warnings per gateway {warnings}: expected 1-3 each (rate-limited to one per 10 s)")
        if failures:
            raise SystemExit("; ".join(failures))
        print("shared limits ok")
    finally:
        for process in procs + [redis]:
            process.send_signal(signal.SIGTERM)
        for process in procs + [redis]:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main(sys.argv[1])
