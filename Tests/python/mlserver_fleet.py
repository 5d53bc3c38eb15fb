"""A small Seldon MLServer fleet on 127.0.0.1, for batching tests and benchmarks.

    python mlserver_fleet.py start DIR COUNT [--adaptive]   # trains a model, starts COUNT replicas
    python mlserver_fleet.py stop DIR

`start` trains a scikit-learn classifier on synthetic data (no downloads), writes it with its
model-settings.json (model `clf`, MLServer's sklearn runtime) and starts COUNT `mlserver start`
processes, each with its own HTTP, gRPC and metrics ports (MLSERVER_HTTP_PORT, ...), and
`parallel_workers: 0` (inference in the server process). With --adaptive, MLServer's own
adaptive batching is on (max_batch_size 32, max_batch_time 5 ms). It prints the HTTP ports,
one per line, once every replica answers /v2/health/ready, and writes the PIDs to DIR/pids.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from localnet import free_port


def train(directory):
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    features, labels = make_classification(n_samples=2000, n_features=8, n_informative=5, random_state=7)
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=7).fit(features, labels)
    model_dir = os.path.join(directory, "clf")
    os.makedirs(model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(model_dir, "model.joblib"))
    return model_dir


def start(directory, count, adaptive):
    os.makedirs(directory, exist_ok=True)
    model_dir = train(directory)
    settings = {"name": "clf", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}
    if adaptive:
        settings.update({"max_batch_size": 32, "max_batch_time": 0.005})
    json.dump(settings, open(os.path.join(model_dir, "model-settings.json"), "w"))
    json.dump({"parallel_workers": 0, "debug": False}, open(os.path.join(directory, "settings.json"), "w"))
    pids, ports, grpc_ports = [], [], []
    for index in range(count):
        http, grpc = free_port(), free_port()
        grpc_ports.append(grpc)
        env = dict(os.environ, MLSERVER_HTTP_PORT=str(http), MLSERVER_GRPC_PORT=str(grpc),
                   MLSERVER_METRICS_PORT=str(free_port()), MLSERVER_HOST="127.0.0.1", MLSERVER_PARALLEL_WORKERS="0")
        log = open(os.path.join(directory, f"mlserver-{index}.log"), "w")
        mlserver = os.path.join(os.path.dirname(sys.executable), "mlserver")
        process = subprocess.Popen([mlserver, "start", directory], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pids.append(process.pid)
        ports.append(http)
    open(os.path.join(directory, "pids"), "w").write("\n".join(str(p) for p in pids) + "\n")
    # (The gRPC ports, for callers that speak the V2 protocol's gRPC API.)
    open(os.path.join(directory, "grpc_ports"), "w").write("\n".join(str(p) for p in grpc_ports) + "\n")
    deadline = time.time() + 120
    for port in ports:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/clf/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                stop(directory)
                sys.exit(f"MLServer on {port} did not become ready (see {directory}/mlserver-*.log)")
            time.sleep(0.2)
    for port in ports:
        print(port)


def batch_counts(admin_port, pool):
    """(members, batches) a gateway's pool sent upstream, from its admin /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    members = sum(int(v) for v in re.findall(rf'^sluice_batch_members_total\{{pool="{pool}"\}} (\d+)', metrics, re.M))
    batches = sum(int(v) for v in re.findall(rf'^sluice_batches_total\{{pool="{pool}",trigger="[a-z_]+"\}} (\d+)', metrics, re.M))
    return members, batches


def stop(directory):
    try:
        pids = [int(line) for line in open(os.path.join(directory, "pids")) if line.strip()]
    except OSError:
        return
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
    time.sleep(0.5)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(sys.argv[2], int(sys.argv[3]), "--adaptive" in sys.argv[4:])
    else:
        stop(sys.argv[2])
