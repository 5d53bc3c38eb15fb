"""Loopback helpers shared by the Python checks: a free port, waiting for a listener, and
starting and stopping simulated replicas and gateways."""
import socket
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def wait_http_ok(url, timeout=30.0):
    """Polls `url` until it answers 200 (a replica's or a gateway's readiness route)."""
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never answered 200")


def start_replicas(binary_dir, count, log_dir, extra, processes):
    """Starts `count` simulated replicas (`sluice-replica`, ids r1..., each given `extra`
    arguments and logging to `log_dir`/replicaN.log) on free ports, appending each process to
    `processes` at once (so the caller's cleanup stops them even if one never gets ready), and
    waits until all are ready. Returns their ports."""
    import os
    import subprocess
    ports = [free_port() for _ in range(count)]
    for index, port in enumerate(ports):
        processes.append(subprocess.Popen(
            [os.path.join(binary_dir, "sluice-replica"), "--port", str(port), "--id", f"r{index + 1}", *extra],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(log_dir, f"replica{index + 1}.log"), "w")))
    for port in ports:
        wait_http_ok(f"http://127.0.0.1:{port}/v2/health/ready")
    return ports


def start_gateway(binary_dir, config, admin_port, log_path, processes):
    """Starts `sluice serve --config config` (logging to `log_path`), appended to `processes`,
    and waits until its admin listener says it is ready. Returns the process."""
    import os
    import subprocess
    gateway = subprocess.Popen([os.path.join(binary_dir, "sluice"), "serve", "--config", config],
                               stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    processes.append(gateway)
    wait_http_ok(f"http://127.0.0.1:{admin_port}/readyz")
    return gateway


def stop_processes(processes, timeout=10):
    """SIGTERM to each process still running, then waits for each; kills what outlives `timeout`."""
    import signal
    import subprocess
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
