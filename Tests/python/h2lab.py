"""The lab shared by h2_interop_check.py and h2_safety_check.py: a throwaway PKI made with the
openssl CLI, a tiny HTTP/1.1 backend, and a gateway (Sluice, or HAProxy to validate the checks)
started in front of it on 127.0.0.1. Stdlib only.

Backend routes:
  GET  /v1/models            fixed JSON (MODELS)
  POST /v1/chat/completions  fixed JSON (CHAT) when the body is REQUEST, else an error JSON
  GET  /stream               six text/event-stream events (EVENTS) over ~0.35 s, chunked
  GET  /big                  BIG_BYTES (8 MB) of octets, content-length
  POST /upload               reads the whole request body (content-length or chunked) before it
                             answers {"bytes": N}; GET /upload answers {"bytes": 0} at once
Anything else is 404 (a POST's body is read first).
"""
import http.server
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

MODELS = json.dumps({"object": "list", "data": [{"id": "interop-model", "object": "model"}]})
REQUEST = json.dumps({"model": "interop-model", "messages": [{"role": "user", "content": "hi " * 200}]})
CHAT = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "request_bytes": len(REQUEST),
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]})
EVENTS = [json.dumps({"i": i}) for i in range(5)] + ["[DONE]"]
BIG_BYTES = 8 << 20
BIG_CHUNK = b"x" * (256 << 10)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, timeout=30, stdin=""):
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, -1, e.stdout or "", f"timed out after {timeout}s")


# ---- PKI ----

def make_pki(d):
    """In `d`: ca.pem/key and rogue-ca.pem/key; server (serial 1001) and server2 (1002) for
    127.0.0.1 and localhost, signed by ca; client (2001, ca) and rogue-client (3001, rogue-ca)."""
    def ssl(*args):
        r = run(["openssl", *args], timeout=60)
        if r.returncode:
            raise SystemExit(f"openssl {' '.join(args[:2])}: {r.stderr.strip()}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        ssl("req", "-x509", *ec, "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.pem", "-days", "2",
            "-subj", f"/CN=h2 lab {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaves = [("server", "ca", "1001", "serverAuth"), ("server2", "ca", "1002", "serverAuth"),
              ("client", "ca", "2001", "clientAuth"), ("rogue-client", "rogue-ca", "3001", "clientAuth")]
    for name, ca, serial, usage in leaves:
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
                    + ("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if usage == "serverAuth" else ""))
        ssl("req", "-new", *ec, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
            "-subj", f"/CN={'localhost' if usage == 'serverAuth' else name}")
        ssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.pem", "-CAkey", f"{d}/{ca}.key",
            "-set_serial", f"0x{serial}", "-days", "2", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")


# ---- backend ----

class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version, timeout = "HTTP/1.1", 30  # (no thread waits on a stalled gateway longer)

    def log_message(self, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = b""
            for _ in range(100000):
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(100):  # trailers, then the empty line
                        if self.rfile.readline() in (b"\r\n", b"\n", b""):
                            break
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
            raise ConnectionError("too many chunks")
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def reply(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in EVENTS:
                data = f"data: {event}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.07)
            return self.wfile.write(b"0\r\n\r\n")
        if self.path == "/big":
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(BIG_BYTES))
            self.end_headers()
            for _ in range(BIG_BYTES // len(BIG_CHUNK)):
                self.wfile.write(BIG_CHUNK)
            return
        routes = {"/v1/models": MODELS, "/upload": '{"bytes": 0}'}
        self.reply(200, routes[self.path]) if self.path in routes else self.reply(404, '{"error":"no"}')

    def do_POST(self):
        body = self.read_body()
        if self.path == "/v1/chat/completions":
            return self.reply(200, CHAT if body == REQUEST.encode() else '{"error":"body differs"}')
        if self.path == "/upload":
            return self.reply(200, json.dumps({"bytes": len(body)}))
        self.reply(404, '{"error":"no"}')


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads, request_queue_size = True, 1024  # (the default backlog of 5 refuses a burst)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a gateway gone or stalled
            super().handle_error(request, client_address)


def start_backend(own_process=False):
    """The backend on 127.0.0.1: (handle, port); handle.shutdown() stops it. It serves from a daemon
    thread, or with `own_process` from a forked process (so that hundreds of busy backend threads
    do not hold the caller's GIL while the caller times a server)."""
    server = QuietServer(("127.0.0.1", 0), Backend)
    port = server.server_address[1]
    if not own_process:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, port
    child = multiprocessing.get_context("fork").Process(target=server.serve_forever, daemon=True)
    child.start()
    server.server_close()  # the child holds the listening socket

    class Handle:
        def shutdown(self):
            child.terminate()
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join(5)
    return Handle(), port


# ---- the gateways ----

class Gateway:
    def __init__(self, d, backend_port):
        self.d, self.backend_port, self.process, self.runs = d, backend_port, None, 0

    def start(self, tls=False, client_ca=False):
        """None once the admin listener answers /healthz (within 20 s), else why not (with the log's tail)."""
        self.runs += 1
        self.port, self.admin = free_port(), free_port()
        self.cert, self.key = f"{self.d}/live-{self.runs}.pem", f"{self.d}/live-{self.runs}.key"
        shutil.copy(f"{self.d}/server.pem", self.cert)
        shutil.copy(f"{self.d}/server.key", self.key)
        self.log = open(f"{self.d}/{self.name}-{self.runs}.log", "w")
        self.process = subprocess.Popen(self.command(tls, client_ca), stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return None
            except OSError:
                time.sleep(0.2)
        state = f"exited with {self.process.returncode}" if self.process.poll() is not None else "not ready in 20 s"
        with open(self.log.name) as f:
            return f"{state}; log tail: " + f.read()[-800:]

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process:
            self.log.close()
        self.process = None


class Sluice(Gateway):
    name = "sluice"
    watches_files, reload_ok = True, staticmethod(lambda answer: answer == 200)  # tls.reload_interval

    def __init__(self, binary, *rest, extra=""):
        """`extra`: more top-level YAML for the config, e.g. 'http2: { max_resets: 1000000 }'."""
        super().__init__(*rest)
        self.binary, self.extra = binary, extra

    def command(self, tls, client_ca):
        config = f"{self.d}/sluice-{self.runs}.yaml"
        with open(config, "w") as f:
            f.write(f'listen: "127.0.0.1:{self.port}"\nadmin: {{ listen: "127.0.0.1:{self.admin}" }}\n'
                    f'pools:\n  - name: chat\n    match: {{ paths: ["/*"] }}\n'
                    f'    replicas: ["127.0.0.1:{self.backend_port}"]\n'
                    # the one backend stays in rotation on a busy machine (slow connects are not what
                    # these checks are about): a long connect timeout, no ejection before 1000 failures
                    f'    timeouts: {{ connect: 10s }}\n    health: {{ eject_after: 1000 }}\n')
            if tls:
                ca = f', client_ca_file: "{self.d}/ca.pem"' if client_ca else ""
                f.write(f'tls: {{ cert_file: "{self.cert}", key_file: "{self.key}"{ca}, reload_interval: 1s }}\n')
            if self.extra:
                f.write(self.extra.rstrip("\n") + "\n")
        return [self.binary, "serve", "--config", config]

    def reload(self):
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin}/admin/reload", method="POST", data=b"")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError as e:
            return str(e)


class HAProxy(Gateway):
    """The same listener shape on HAProxy, to validate the checks themselves; reload is SIGUSR2 to
    the master (-W), which keeps the old worker when the new configuration does not load."""
    name = "haproxy"
    watches_files, reload_ok = False, staticmethod(lambda answer: True)

    def combine(self):
        with open(f"{self.cert}.combined", "w") as out:
            for path in (self.cert, self.key):
                with open(path) as f:
                    out.write(f.read())

    def command(self, tls, client_ca):
        self.combine()
        bind = f"bind 127.0.0.1:{self.port}"
        if tls:
            bind += f" ssl crt {self.cert}.combined alpn h2,http/1.1"
            bind += f" ca-file {self.d}/ca.pem verify required" if client_ca else ""
        config = f"{self.d}/haproxy-{self.runs}.cfg"
        with open(config, "w") as f:
            f.write(f"""global
    nbthread 1
defaults
    mode http
    timeout client 30s
    timeout server 30s
    timeout connect 5s
frontend admin
    bind 127.0.0.1:{self.admin}
    http-request return status 200 content-type text/plain string ok
frontend data
    {bind}
    default_backend replicas
backend replicas
    server r1 127.0.0.1:{self.backend_port}
""")
        return ["haproxy", "-W", "-db", "-f", config]

    def reload(self):
        self.combine()
        os.kill(self.process.pid, signal.SIGUSR2)
        return "SIGUSR2"
