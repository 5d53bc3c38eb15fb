"""Batched V2 `infer` through Sluice against a real Seldon MLServer fleet equals unbatched.

Usage: mlserver_batching_check.py SLUICE_BINARY   (the virtualenv's python, with mlserver,
mlserver-sklearn and scikit-learn)

Starts two MLServer replicas (mlserver_fleet.py: a scikit-learn model trained on synthetic data
at start), `sluice serve` in front of them with `batching` on the pool, then sends 64 concurrent
requests of 1-3 rows through Sluice and the same requests one by one straight to a replica, and
checks that every answer's outputs are equal, row for row, and that the 64 went upstream as
fewer batches. Exits non-zero with the reason otherwise.
"""
import concurrent.futures
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mlserver_fleet  # noqa: E402


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status, json.loads(response.read())


def main():
    sluice = sys.argv[1]
    work = tempfile.mkdtemp(prefix="sluice-mlserver-")
    fleet = os.path.join(work, "fleet")
    ports = []
    gateway = None
    try:
        import io
        import contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            mlserver_fleet.start(fleet, 2, adaptive=False)
        ports = [int(line) for line in out.getvalue().split()]
        data_port, admin_port = mlserver_fleet.free_port(), mlserver_fleet.free_port()
        config = os.path.join(work, "sluice.yaml")
        with open(config, "w") as f:
            f.write(f"""listen: "127.0.0.1:{data_port}"
admin: {{ listen: "127.0.0.1:{admin_port}" }}
log_level: warning
pools:
  - name: sklearn
    match: {{ paths: ["/v2/*"] }}
    replicas: [{", ".join(f'"127.0.0.1:{p}"' for p in ports)}]
    routing: {{ policy: least-queue }}
    batching: {{ max_batch: 32, max_wait: 5ms, target_latency: 50ms }}
""")
        gateway = subprocess.Popen([sluice, "serve", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        rng = random.Random(3)
        requests = []
        for index in range(64):
            rows = rng.randint(1, 3)
            requests.append({"id": f"req-{index}", "inputs": [{
                "name": "x", "shape": [rows, 8], "datatype": "FP64",
                "data": [round(rng.uniform(-3, 3), 4) for _ in range(rows * 8)]}]})
        alone = [post(f"http://127.0.0.1:{ports[0]}/v2/models/clf/infer", body)[1] for body in requests]
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            batched = list(pool.map(lambda body: post(f"http://127.0.0.1:{data_port}/v2/models/clf/infer", body), requests))
        problems = []
        for index, ((status, answer), single) in enumerate(zip(batched, alone)):
            if status != 200:
                problems.append(f"request {index}: status {status}")
            elif answer["outputs"] != single["outputs"]:
                problems.append(f"request {index}: {answer['outputs']} != {single['outputs']}")
            elif answer.get("id") != requests[index]["id"]:
                problems.append(f"request {index}: id {answer.get('id')}")
        members, batches = mlserver_fleet.batch_counts(admin_port, "sklearn")
        if members != 64 or not 0 < batches < 64:
            problems.append(f"64 requests went as {batches} batches of {members} members")
        if problems:
            sys.exit("mlserver batching: " + "; ".join(problems[:5]))
        rows = sum(r["inputs"][0]["shape"][0] for r in requests)
        print(f"mlserver batching ok: 64 requests ({rows} rows) as {batches} batches, every answer equal to the unbatched one")
    finally:
        if gateway:
            gateway.terminate()
            gateway.wait(timeout=10)
        mlserver_fleet.stop(fleet)


if __name__ == "__main__":
    main()
