"""The V2 inference protocol's gRPC API through Sluice against a real Seldon MLServer fleet.

Usage: mlserver_grpc_check.py SLUICE_BINARY   (the virtualenv's python, with mlserver,
mlserver-sklearn, scikit-learn and grpcio)

Starts two MLServer replicas (mlserver_fleet.py) and two gateways in front of their gRPC ports
(pools matched by `/inference.GRPCInferenceService/*`, `upstream: { protocol: h2c }`): one
plain, one with `batching` whose pool also matches model `clf`, and checks with grpcio (h2c with prior knowledge):
  passthrough  ServerLive, ModelMetadata and 16 ModelInfer calls of 1-3 rows: the answer's
               bytes through the gateway equal the bytes straight from a replica; a call for a
               model the replica lacks gets the replica's own status and message.
  routing      where the pool matches model `clf`, a call for model "nope" gets UNIMPLEMENTED
               from the gateway.
  batching     64 concurrent one-row ModelInfer calls: every answer's outputs equal the
               unbatched answer's, each with its own id, and the 64 reached the replicas as
               fewer calls (the gateway's batch counters).
Exits non-zero with the reason otherwise.
"""
import concurrent.futures
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mlserver_fleet  # noqa: E402

import grpc  # noqa: E402
from mlserver.grpc import dataplane_pb2 as pb  # noqa: E402

SERVICE = "/inference.GRPCInferenceService/"


def gateway(sluice, work, name, replicas, batching, models=None):
    data_port, admin_port = mlserver_fleet.free_port(), mlserver_fleet.free_port()
    config = os.path.join(work, f"{name}.yaml")
    with open(config, "w") as f:
        f.write(f"""listen: "127.0.0.1:{data_port}"
admin: {{ listen: "127.0.0.1:{admin_port}" }}
log_level: warning
pools:
  - name: {name}
    match: {{ paths: ["{SERVICE}*"]{f', models: {models}' if models else ''} }}
    replicas: [{", ".join(f'"127.0.0.1:{p}"' for p in replicas)}]
    upstream: {{ protocol: h2c }}
""" + ("    batching: { max_batch: 32, max_wait: 5ms, target_latency: 50ms }\n" if batching else ""))
    process = subprocess.Popen([sluice, "serve", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return process, data_port, admin_port


def raw_call(channel, method, request_bytes):
    """A unary call with the bytes as they are both ways; returns (code, details, answer bytes)."""
    call = channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
    try:
        return grpc.StatusCode.OK, "", call(request_bytes, timeout=20)
    except grpc.RpcError as error:
        return error.code(), error.details(), b""


def infer_request(rng, index, rows, model="clf"):
    request = pb.ModelInferRequest(model_name=model, id=f"req-{index}")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[rows, 8])
    tensor.contents.fp64_contents.extend(round(rng.uniform(-3, 3), 4) for _ in range(rows * 8))
    return request


def main():
    sluice = sys.argv[1]
    work = tempfile.mkdtemp(prefix="sluice-mlserver-grpc-")
    fleet = os.path.join(work, "fleet")
    gateways = []
    problems = []
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            mlserver_fleet.start(fleet, 2, adaptive=False)
        replicas = [int(line) for line in open(os.path.join(fleet, "grpc_ports")) if line.strip()]
        plain, plain_port, _ = gateway(sluice, work, "clf-plain", replicas, batching=False)
        batched, batched_port, batched_admin = gateway(sluice, work, "clf-batched", replicas, batching=True, models='["clf"]')
        gateways = [plain, batched]
        direct = grpc.insecure_channel(f"127.0.0.1:{replicas[0]}")
        through = grpc.insecure_channel(f"127.0.0.1:{plain_port}")
        rng = random.Random(5)

        # Byte for byte, call by call.
        calls = [("ServerLive", pb.ServerLiveRequest()), ("ModelMetadata", pb.ModelMetadataRequest(name="clf"))]
        calls += [("ModelInfer", infer_request(rng, index, rng.randint(1, 3))) for index in range(16)]
        # A model the replica does not have: its own NOT_FOUND, passed on as it came.
        calls.append(("ModelInfer", infer_request(rng, 98, 1, model="nope")))
        for method, request in calls:
            data = request.SerializeToString()
            want, got = raw_call(direct, method, data), raw_call(through, method, data)
            if got != want:
                problems.append(f"{method}: through the gateway {got[0]} {got[1]!r} {len(got[2])} bytes, direct {want[0]} {want[1]!r} {len(want[2])} bytes")
        # Where pools match models, no pool serves "nope": the gateway's own UNIMPLEMENTED.
        code, details, _ = raw_call(grpc.insecure_channel(f"127.0.0.1:{batched_port}"), "ModelInfer", infer_request(rng, 99, 1, model="nope").SerializeToString())
        if code != grpc.StatusCode.UNIMPLEMENTED or "nope" not in details:
            problems.append(f"unrouted model: {code} {details!r}")

        # Batched: 64 concurrent one-row calls.
        requests = [infer_request(rng, index, 1) for index in range(64)]
        alone = [pb.ModelInferResponse.FromString(raw_call(direct, "ModelInfer", r.SerializeToString())[2]) for r in requests]
        batched_channel = grpc.insecure_channel(f"127.0.0.1:{batched_port}")
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(lambda r: raw_call(batched_channel, "ModelInfer", r.SerializeToString()), requests))
        for index, ((code, details, data), single) in enumerate(zip(answers, alone)):
            if code != grpc.StatusCode.OK:
                problems.append(f"batched call {index}: {code} {details!r}")
                continue
            answer = pb.ModelInferResponse.FromString(data)
            if list(answer.outputs) != list(single.outputs) or answer.id != requests[index].id:
                problems.append(f"batched call {index}: {answer} != {single}")
        members, batches = mlserver_fleet.batch_counts(batched_admin, "clf-batched")
        if members != 64 or not 0 < batches < 64:
            problems.append(f"64 calls went as {batches} batches of {members} members")
        if problems:
            sys.exit("mlserver grpc: " + "; ".join(problems[:5]))
        print(f"mlserver grpc ok: {len(calls)} calls byte-identical through the gateway; 64 one-row ModelInfer calls as {batches} batches, outputs equal to unbatched")
    finally:
        for process in gateways:
            process.terminate()
            process.wait(timeout=10)
        mlserver_fleet.stop(fleet)


if __name__ == "__main__":
    main()
