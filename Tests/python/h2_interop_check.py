"""Sluice's data listener against the real HTTP/2 tools: curl, nghttp, h2load, openssl s_client.

Run:  python3 Tests/python/h2_interop_check.py --sluice .build/debug/sluice [--keep]
      python3 Tests/python/h2_interop_check.py --against haproxy     (the same checks on HAProxy 2.6+)
Stdlib only; needs the `openssl`, `curl` (with nghttp2), `nghttp` and `h2load` commands.

Makes a throwaway PKI and a tiny HTTP/1.1 backend (h2lab.py: a CA, server certificates for
127.0.0.1 and localhost with two serials, a client certificate and a rogue CA's; GET /v1/models and
POST /v1/chat/completions answer fixed JSON, GET /stream sends six events over ~0.35 s), then starts
the gateway three times and checks:
  plain   curl --http2-prior-knowledge and curl --http1.1 get the backend's JSON (GET and POST) over
          HTTP/2 and HTTP/1.1; nghttp GET and POST get 200 and the body; h2load -n 200 -c 4 -m 4 h2c
          has 200 successes; curl -N over h2c gets every event in order, spread out in time (not
          buffered to the end).
  tls     s_client negotiates ALPN h2 and http/1.1 and verifies the chain; curl --http2 (by IP and
          by the DNS name) and --http1.1 with --cacert; h2load over https is h2; streaming over TLS.
          Then certificate reload: the files are replaced by the second pair (another serial) and
          s_client must see it within 8 s without being told (reload_interval 1s); then by the first
          pair again and POST /admin/reload (loopback, no token) must answer 200 and s_client see it;
          then the cert file gets garbage, and the last good certificate must still be served.
  mtls    with client_ca_file: no client certificate fails, the rogue CA's fails, the good one works.
Prints PASS/FAIL per check, exits 0 when all pass, 1 otherwise.
"""
import argparse
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

import h2lab
from h2lab import CHAT, EVENTS, MODELS, REQUEST, run

POST = ["-H", "content-type: application/json", "--data-binary", REQUEST]
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)


# ---- tools ----

def curl(url, *args):
    r = run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_version} %{http_code}", *args, url], timeout=20)
    body, _, tail = r.stdout.rpartition("\n")
    version, code = (tail.split() + ["", ""])[:2]
    return r.returncode, body, version, code, r.stderr.strip()[-200:]


def curl_check(name, url, args, version, body):
    rc, got, got_version, code, err = curl(url, *args)
    check(name, rc == 0 and code == "200" and got_version == version and got == body,
          f"exit {rc}, HTTP/{got_version} {code}, body {'as sent by the backend' if got == body else repr(got[:80])}"
          + (f", {err}" if err else ""))


def h2load_check(name, url, protocol):
    r = run(["h2load", "-n", "200", "-c", "4", "-m", "4", url], timeout=60)
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", r.stdout)
    codes = re.search(r"status codes: (\d+) 2xx", r.stdout)
    got = re.search(r"Application protocol: (\S+)", r.stdout)
    ok = bool(counts and codes) and counts.group(4) == "200" and counts.group(5) == "0" and codes.group(1) == "200"
    check(name, ok and got and got.group(1) == protocol,
          f"{counts.group(0) if counts else r.stdout[-200:] + r.stderr[-200:]}, 2xx {codes.group(1) if codes else '?'},"
          f" protocol {got.group(1) if got else '?'}")


def nghttp_check(name, url, args, body):
    r = run(["nghttp", "-v", *args, url], timeout=20)
    status = re.search(r":status: (\d+)", r.stdout)
    check(name, r.returncode == 0 and status and status.group(1) == "200" and body in r.stdout,
          f"exit {r.returncode}, :status {status.group(1) if status else '?'}, body "
          f"{'received' if body in r.stdout else 'missing'}")


def stream_check(name, url, args, version):
    """curl -N: every event in order over `version`, the last at least 0.15 s after the first (not buffered)."""
    p = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "10", "-w", "version=%{http_version}\n", *args, url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events, buf, got_version, start = [], b"", "?", time.monotonic()
    while time.monotonic() - start < 12 and select.select([p.stdout], [], [], 12)[0]:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"data: "):
                events.append((time.monotonic() - start, line[6:].decode()))
            elif line.startswith(b"version="):
                got_version = line[8:].decode()
    if p.poll() is None:
        p.kill()
    p.wait(5)
    spread = events[-1][0] - events[0][0] if events else 0
    check(name, [e for _, e in events] == EVENTS and spread >= 0.15 and got_version == version,
          f"HTTP/{got_version}, {len(events)}/{len(EVENTS)} events, in order: {[e for _, e in events] == EVENTS}, "
          f"first to last {spread:.2f}s")


def s_client(port, *args):
    return run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args],
               timeout=15)


def served_serial(port):
    pem = s_client(port).stdout
    r = run(["openssl", "x509", "-noout", "-serial"], stdin=pem, timeout=10)
    return r.stdout.strip().replace("serial=", "") or f"none ({r.stderr.strip()[:80]})"


# ---- the checks ----

def plain_checks(gw):
    url = f"http://127.0.0.1:{gw.port}"
    curl_check("h2c GET (curl --http2-prior-knowledge)", url + "/v1/models", ["--http2-prior-knowledge"], "2", MODELS)
    curl_check("HTTP/1.1 GET (curl --http1.1)", url + "/v1/models", ["--http1.1"], "1.1", MODELS)
    curl_check("h2c POST (curl)", url + "/v1/chat/completions", ["--http2-prior-knowledge", *POST], "2", CHAT)
    curl_check("HTTP/1.1 POST (curl)", url + "/v1/chat/completions", ["--http1.1", *POST], "1.1", CHAT)
    with open(f"{gw.d}/request.json", "w") as f:
        f.write(REQUEST)
    nghttp_check("h2c GET (nghttp)", url + "/v1/models", [], MODELS)
    nghttp_check("h2c POST (nghttp -d)", url + "/v1/chat/completions",
                 ["-d", f"{gw.d}/request.json", "-H", "content-type: application/json"], CHAT)
    h2load_check("h2c load (h2load -n 200 -c 4 -m 4)", url + "/v1/models", "h2c")
    stream_check("h2c event stream (curl -N)", url + "/stream", ["--http2-prior-knowledge"], "2")


def tls_checks(gw):
    ca, url = f"{gw.d}/ca.pem", f"https://127.0.0.1:{gw.port}"
    for alpn in ("h2", "http/1.1"):
        r = s_client(gw.port, "-alpn", alpn, "-CAfile", ca)
        got, verify = re.search(r"ALPN protocol: (\S+)", r.stdout), re.search(r"Verify return code: .*", r.stdout)
        check(f"TLS ALPN {alpn} (openssl s_client)", got and got.group(1) == alpn and verify
              and verify.group(0) == "Verify return code: 0 (ok)",
              f"ALPN {got.group(1) if got else 'none'}, {verify.group(0) if verify else r.stderr[-120:]}")
    curl_check("TLS h2 GET by IP (curl --http2 --cacert)", url + "/v1/models", ["--http2", "--cacert", ca], "2", MODELS)
    curl_check("TLS h2 GET by DNS name", f"https://localhost:{gw.port}/v1/models",
               ["--http2", "--cacert", ca, "--resolve", f"localhost:{gw.port}:127.0.0.1"], "2", MODELS)
    curl_check("TLS h2 POST (curl)", url + "/v1/chat/completions", ["--http2", "--cacert", ca, *POST], "2", CHAT)
    curl_check("TLS HTTP/1.1 GET (curl --http1.1)", url + "/v1/models", ["--http1.1", "--cacert", ca], "1.1", MODELS)
    h2load_check("TLS load (h2load https)", url + "/v1/models", "h2")
    stream_check("TLS h2 event stream (curl -N)", url + "/stream", ["--http2", "--cacert", ca], "2")


def reload_checks(gw):
    def install(pair):  # each file replaced atomically, the key first
        for suffix, live in (("key", gw.key), ("pem", gw.cert)):
            shutil.copy(f"{gw.d}/{pair}.{suffix}", f"{gw.d}/next.{suffix}")
            os.replace(f"{gw.d}/next.{suffix}", live)

    def wait_serial(want, poke):
        serial, answers, start = None, [], time.monotonic()
        while time.monotonic() - start < 8 and serial != want:
            if poke and len(answers) <= (time.monotonic() - start) / 3:
                answers.append(gw.reload())
            time.sleep(0.5)
            serial = served_serial(gw.port)
        return serial, answers, time.monotonic() - start

    good = served_serial(gw.port)
    check("certificate served before reload", good == "1001", f"serial {good}")
    if gw.watches_files:
        install("server2")
        serial, _, took = wait_serial("1002", poke=False)
        check("new certificate picked up by reload_interval alone", serial == "1002", f"serial {serial} after {took:.1f}s")
    good = "1001" if gw.watches_files else "1002"
    install("server" if gw.watches_files else "server2")
    serial, answers, took = wait_serial(good, poke=True)
    check("new certificate served after POST /admin/reload", serial == good and all(gw.reload_ok(a) for a in answers),
          f"serial {serial} after {took:.1f}s, reload answers {answers}")
    with open(gw.cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    answer = gw.reload()
    time.sleep(3)
    serial = served_serial(gw.port)
    rc, body, version, code, err = curl(f"https://127.0.0.1:{gw.port}/v1/models", "--http2", "--cacert", f"{gw.d}/ca.pem")
    check("garbage certificate file: last good one still served", serial == good and code == "200" and body == MODELS,
          f"reload answered {answer}, serial {serial}, GET {code} HTTP/{version}" + (f", {err}" if err else ""))


def mtls_checks(gw):
    ca, url = f"{gw.d}/ca.pem", f"https://127.0.0.1:{gw.port}/v1/models"
    for name, args in (("no client certificate", []),
                       ("rogue CA's client certificate", ["--cert", f"{gw.d}/rogue-client.pem", "--key", f"{gw.d}/rogue-client.key"])):
        rc, body, version, code, err = curl(url, "--http2", "--cacert", ca, *args)
        check(f"mTLS refuses {name}", not (rc == 0 and code == "200"), f"exit {rc}, HTTP {code or '-'}, {err[:120]}")
    curl_check("mTLS accepts the good client certificate", url,
               ["--http2", "--cacert", ca, "--cert", f"{gw.d}/client.pem", "--key", f"{gw.d}/client.key"], "2", MODELS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--sluice", help="path of the sluice binary")
    which.add_argument("--against", choices=["haproxy"], help="run the checks on HAProxy instead")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (PKI, configs, logs)")
    args = parser.parse_args()
    for tool in ("openssl", "curl", "nghttp", "h2load") + (("haproxy",) if args.against else ()):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    d = tempfile.mkdtemp(prefix="h2-interop-")
    h2lab.make_pki(d)
    backend, port = h2lab.start_backend()
    gw = h2lab.Sluice(os.path.abspath(args.sluice), d, port) if args.sluice else h2lab.HAProxy(d, port)
    try:
        for tls, client_ca, checks in ((False, False, [plain_checks]), (True, False, [tls_checks, reload_checks]),
                                       (True, True, [mtls_checks])):
            print(f"-- {gw.name}: {'mTLS' if client_ca else 'TLS' if tls else 'plain'} listener", flush=True)
            failed = gw.start(tls, client_ca)
            if failed:
                check(f"{gw.name} starts", False, failed)
            else:
                for group in checks:
                    try:
                        group(gw)
                    except Exception as e:
                        check(group.__name__, False, f"{e.__class__.__name__}: {e}")
            gw.stop()
    finally:
        gw.stop()
        backend.shutdown()
        if args.keep:
            print(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)
    print(f"{sum(results)}/{len(results)} checks passed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
