"""`sluice serve` out of file descriptors, and at its connection cap.

Run by scripts/test.sh with the directory of the built binaries as the only argument.
- Out of descriptors (`ulimit -n 64`, `limits.max_connections` far above it, 120 clients): the
  listener waits between accepts instead of spinning (the gateway's CPU over 2 s stays under
  25% of a core), says so in its log, and answers again once the clients go.
- At its default cap (no `max_connections`, `ulimit -n 96`: half the descriptors less a
  reserve, 16): the surplus waits in the backlog, nothing is logged as an accept failure, and
  a request is answered as soon as the holders go.
Exits non-zero with the reason on any violation.
"""
import http.client
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

from localnet import free_port, wait_port

CLIENTS = 120


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(bin_dir, work, replica_port, files, extra):
    port, admin = free_port(), free_port()
    config = os.path.join(work, f"fd-{files}.yaml")
    with open(config, "w") as f:
        f.write(f"""listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
pools:
  - {{ name: chat, match: {{ paths: ["/v1/*"] }}, replicas: ["127.0.0.1:{replica_port}"] }}
{extra}""")
    log = open(os.path.join(work, f"fd-{files}.log"), "w+")

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    process = subprocess.Popen([os.path.join(bin_dir, "sluice"), "serve", "--config", config],
                               stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
    wait_port(admin)
    return process, port, log


def ask(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/v1/models")
    status = connection.getresponse().status
    connection.close()
    return status


def flood(port):
    held = []
    for _ in range(CLIENTS):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(s)
    return held


def phase(bin_dir, work, replica_port, files, extra, expect_warning):
    process, port, log = serve(bin_dir, work, replica_port, files, extra)
    try:
        if ask(port) != 200:
            sys.exit(f"fd {files}: the first request failed")
        held = flood(port)
        time.sleep(0.5)
        before = cpu_seconds(process.pid)
        time.sleep(2)
        used = cpu_seconds(process.pid) - before
        if used > 0.5:
            sys.exit(f"fd {files}: the gateway used {used:.2f} s of CPU in 2 s with {CLIENTS} clients held (spinning on accept?)")
        for s in held:
            s.close()
        deadline = time.time() + 10
        status = None
        while time.time() < deadline:
            try:
                status = ask(port)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if status != 200:
            sys.exit(f"fd {files}: no answer after the clients left")
        log.seek(0)
        text = log.read()
        warned = "cannot accept connections" in text
        if warned != expect_warning:
            sys.exit(f"fd {files}: accept-failure warning {'missing' if expect_warning else 'unexpected'}:\n{text}")
        print(f"fd {files}: {CLIENTS} clients held, {used:.2f} s CPU in 2 s, answered after, warning logged: {warned}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(bin_dir):
    work = tempfile.mkdtemp(prefix="sluice-fd-")
    replica_port = free_port()
    replica = subprocess.Popen([os.path.join(bin_dir, "sluice-replica"), "--port", str(replica_port), "--id", "r1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(replica_port)
        phase(bin_dir, work, replica_port, 64, "limits: { max_connections: 100000 }\n", expect_warning=True)
        phase(bin_dir, work, replica_port, 96, "", expect_warning=False)
    finally:
        replica.terminate()
        replica.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1])
