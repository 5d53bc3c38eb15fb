"""A raw HTTP/2 client connection for h2_safety_check.py: h2 writes the preface and well-formed
frames (or the caller writes hand-made ones), hyperframe reads back what the server sends (SETTINGS,
response heads, RST_STREAM, GOAWAY, DATA), and normal_request() is a plain GET through h2's own
state machine. h2c with prior knowledge, or TLS with ALPN h2 (args.tls, args.cafile). Needs `h2`.
"""
import select
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame

IO_TIMEOUT = 5.0


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
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            SettingCodes.ENABLE_PUSH: 0, **(settings or {})})
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
        return self.send(self.h2.data_to_send(), timeout)

    def pump(self, wait, until=None):
        """Read and parse what arrives within `wait` seconds (at least one poll), or until `until()` holds."""
        deadline = time.monotonic() + wait
        for _ in range(100000):
            if self.closed or (until and until()):
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
                return self.lost("EOF")
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
        self.sock.close()


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
        conn, status, body, deadline = p.h2, None, b"", time.monotonic() + IO_TIMEOUT
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
                    body = (body + event.data)[:200]
                elif isinstance(event, h2.events.StreamReset):
                    return False, f"stream reset {code_name(event.error_code)}"
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return False, f"GOAWAY {code_name(event.error_code)}"
                elif isinstance(event, h2.events.StreamEnded):
                    took, ok = IO_TIMEOUT - (deadline - time.monotonic()), status is not None and status < 500
                    return ok, f"status {status} in {took:.2f}s" + ("" if ok else f" {body.decode(errors='replace')}")
            p.flush()
        return False, f"no complete response in {IO_TIMEOUT}s"
    except Exception as e:
        return False, f"{e.__class__.__name__}: {e}"
    finally:
        p.close()
