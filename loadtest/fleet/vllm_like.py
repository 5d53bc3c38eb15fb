#!/usr/bin/env python3
"""vllm_like.py: one simulated vLLM-like model-server replica (Python 3.11 stdlib only).

An independent model of a continuous-batching engine with an automatic prefix cache, written
without reference to Sluice's own simulator (Sources/SluiceReplica): its own tokenizer, its own
block manager and its own scheduler, so that routing can be measured on a fleet Sluice did not
shape. One process per replica:

    python3 loadtest/fleet/vllm_like.py --port 8001 --id r1 [--slots 8 --blocks 1024 ...]

See loadtest/fleet/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time

# --------------------------------------------------------------------------------------------
# Tokenizer: words of up to 6 word-characters are one token, longer words are cut into pieces
# of 3 characters, every punctuation character is a token, whitespace is dropped. (Sluice's
# simulator splits on whitespace into 4-character pieces; this one deliberately does not.)
# One regex, so the whole job runs in C.

_TOKEN_RE = re.compile(r"\b\w{1,6}\b|\w{1,3}|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


# Output vocabulary: short words (each one token under the tokenizer above), ASCII, no escaping.
_VOCAB = (
    "the of and to in is it that for on was with as be by at this are from or an have not "
    "but which one all were we when there can more if has so some what out up into them only "
    "time new may its two then do first any like now over such our also very well where most "
    "data model cache token block batch step queue slot route fleet graph node edge value"
).split()


def output_words(prompt: str, n: int) -> list[str]:
    """n deterministic words derived from a hash of the prompt (an LCG seeded by blake2b)."""
    x = int.from_bytes(hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    out = []
    v = len(_VOCAB)
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out.append(_VOCAB[(x >> 33) % v])
    return out


# --------------------------------------------------------------------------------------------
# Block manager: a prefix cache of hash-chained full blocks (block i's key is a hash of every
# token through block i), LRU over the blocks that no running sequence holds.


def chain_keys(tokens: list[str], bt: int, start_key: int = 0, start: int = 0) -> list[int]:
    """Keys of the full blocks of tokens[start:], chained from start_key."""
    keys = []
    k = start_key
    end = len(tokens) - (len(tokens) - start) % bt
    for i in range(start, end, bt):
        k = hash((k, tuple(tokens[i:i + bt])))
        keys.append(k)
    return keys


class BlockManager:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.ref: dict[int, int] = {}  # cached (hashed) block -> number of running holders
        self.free_lru: collections.OrderedDict[int, None] = collections.OrderedDict()  # ref 0, LRU first
        self.private = 0  # blocks reserved by running sequences and not (yet) hashed into the cache

    def free_blocks(self) -> int:
        return self.capacity - len(self.ref) - self.private

    def in_use(self) -> int:
        """Blocks held by running sequences (cached-but-free blocks are reusable, like vLLM)."""
        return len(self.ref) - len(self.free_lru) + self.private

    def match_prefix(self, keys: list[int]) -> int:
        n = 0
        ref = self.ref
        for k in keys:
            if k in ref:
                n += 1
            else:
                break
        return n

    def pin(self, keys) -> None:
        ref = self.ref
        for k in keys:
            r = ref[k]
            if r == 0:
                del self.free_lru[k]
            ref[k] = r + 1

    def unpin_reversed(self, keys) -> None:
        """Release keys; the tail of a sequence is released first, so it is evicted first."""
        ref = self.ref
        for k in reversed(keys):
            r = ref[k] - 1
            ref[k] = r
            if r == 0:
                self.free_lru[k] = None

    def reserve(self, n: int) -> bool:
        """Take n private blocks, evicting free cached blocks LRU first; False if impossible."""
        short = n - self.free_blocks()
        if short > len(self.free_lru):
            return False
        ref = self.ref
        lru = self.free_lru
        for _ in range(max(0, short)):
            k, _ = lru.popitem(last=False)
            del ref[k]
        self.private += n
        return True

    def promote(self, keys) -> None:
        """Turn one private block per key into a cached block held by the caller. A key another
        sequence computed meanwhile is shared instead, and the private block goes back."""
        ref = self.ref
        for k in keys:
            self.private -= 1
            r = ref.get(k)
            if r is None:
                ref[k] = 1
            else:
                if r == 0:
                    del self.free_lru[k]
                ref[k] = r + 1


# --------------------------------------------------------------------------------------------
# Engine


class Seq:
    __slots__ = (
        "id", "prompt_tokens", "prompt_keys", "prompt_len", "max_tokens", "words", "cached",
        "done_prefill", "prefilled", "emitted", "held", "reserved", "event", "cancelled",
        "finished", "error", "arrival", "first_token_at", "stream", "state",
    )

    def __init__(self, sid: int, tokens: list[str], keys: list[int], words: list[str], stream: bool):
        self.id = sid
        self.stream = stream  # wake the handler on every token (else only at the end)
        self.state = "waiting"  # waiting, running, done
        self.prompt_tokens = tokens
        self.prompt_keys = keys
        self.prompt_len = len(tokens)
        self.max_tokens = len(words)
        self.words = words
        self.cached = 0  # prompt tokens found in the cache at admission
        self.prefilled = 0  # prompt tokens computed or found cached
        self.done_prefill = False
        self.emitted = 0  # output tokens produced so far
        self.held: list[int] = []  # cached block keys this sequence holds (pinned)
        self.reserved = 0  # private blocks still reserved
        self.event = asyncio.Event()
        self.cancelled = False
        self.finished = False
        self.error: str | None = None
        self.arrival = time.monotonic()
        self.first_token_at = 0.0


class Engine:
    def __init__(self, a):
        self.slots = a.slots
        self.bt = a.block_tokens
        self.step_s = a.step_ms / 1e3
        self.prefill_s = a.prefill_us_per_token / 1e6
        self.decode_s = a.decode_us_per_seq / 1e6
        self.max_batched = a.max_batched_tokens
        self.bm = BlockManager(a.blocks)
        self.waiting: collections.deque[Seq] = collections.deque()
        self.running: list[Seq] = []
        self.wake = asyncio.Event()
        self.next_id = 0
        # counters
        self.queries = 0
        self.hits = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.finished_total = 0
        self.aborted_total = 0
        self.steps = 0
        self.busy_s = 0.0
        self.overrun_s = 0.0  # time the step took beyond its modelled duration (Python overhead)

    def blocks_needed(self, prompt_len: int, max_tokens: int) -> int:
        return -(-(prompt_len + max_tokens) // self.bt)

    def submit(self, prompt: str, max_tokens: int, stream: bool) -> Seq:
        tokens = tokenize(prompt)
        if not tokens:
            tokens = ["<s>"]
        keys = chain_keys(tokens, self.bt)
        self.next_id += 1
        s = Seq(self.next_id, tokens, keys, output_words(prompt, max_tokens), stream)
        if self.blocks_needed(len(tokens), max_tokens) > self.bm.capacity:
            s.error = "prompt_too_long"
            s.finished = True
            return s
        self.waiting.append(s)
        self.wake.set()
        return s

    def cancel(self, s: Seq) -> None:
        if s.finished or s.cancelled:
            return
        s.cancelled = True
        if s.state == "waiting":
            try:
                self.waiting.remove(s)
            except ValueError:
                pass
            self._end(s, aborted=True)
        else:
            self.wake.set()

    # -- admission -------------------------------------------------------------------------
    def _admit(self) -> None:
        bm = self.bm
        while self.waiting and len(self.running) < self.slots:
            s = self.waiting[0]
            if s.cancelled:
                self.waiting.popleft()
                self._end(s, aborted=True)
                continue
            keys = s.prompt_keys
            n = bm.match_prefix(keys)
            hit_keys = keys[:n]
            bm.pin(hit_keys)
            need = self.blocks_needed(s.prompt_len, s.max_tokens) - n
            if not bm.reserve(need):
                bm.unpin_reversed(hit_keys)  # FIFO: the head waits for blocks to free up
                return
            self.waiting.popleft()
            s.state = "running"
            s.held = hit_keys
            s.reserved = need
            cached = n * self.bt
            if cached >= s.prompt_len:  # a fully cached prompt still computes its last token
                cached = s.prompt_len - 1
            s.cached = cached
            s.prefilled = cached
            self.queries += s.prompt_len
            self.hits += cached
            self.prompt_tokens_total += s.prompt_len
            self.running.append(s)

    def _end(self, s: Seq, aborted: bool) -> None:
        bm = self.bm
        if s.held or s.reserved:
            # cache the full blocks of what was computed: prompt (if prefilled) and generated
            # tokens, chained on from the prompt's blocks, like vLLM keeps them after a request
            if s.done_prefill and s.emitted > 0:
                total = s.prompt_len + s.emitted - 1  # the last token has no KV yet
                nfull = total // self.bt
                have = len(s.held)
                if nfull > have:
                    toks = s.prompt_tokens + s.words[: s.emitted]
                    start_key = s.held[-1] if have else 0
                    extra = chain_keys(toks[: nfull * self.bt], self.bt, start_key, have * self.bt)
                    extra = extra[: s.reserved]
                    bm.promote(extra)
                    s.reserved -= len(extra)
                    s.held = s.held + extra
            bm.private -= s.reserved
            s.reserved = 0
            bm.unpin_reversed(s.held)
            s.held = []
        s.finished = True
        s.state = "done"
        if aborted:
            self.aborted_total += 1
        else:
            self.finished_total += 1
        s.event.set()

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        ideal_end = 0.0
        while True:
            # drop cancelled sequences, admit waiting ones
            if any(s.cancelled for s in self.running):
                keep = []
                for s in self.running:
                    if s.cancelled:
                        self._end(s, aborted=True)
                    else:
                        keep.append(s)
                self.running = keep
            self._admit()
            if not self.running:
                self.wake.clear()
                if self.waiting and not any(w.cancelled for w in self.waiting):
                    # cannot happen unless blocks leaked; avoid spinning
                    await asyncio.sleep(self.step_s)
                    continue
                await self.wake.wait()
                ideal_end = 0.0
                continue

            # Back-to-back steps run on an ideal clock, so the timer's oversleep (about 1 ms a
            # step) does not add up over a long decode.
            t0 = loop.time()
            if ideal_end and t0 - ideal_end < 0.005:
                t0 = ideal_end
            decoders = [s for s in self.running if s.done_prefill]
            budget = self.max_batched - len(decoders)
            prefill = 0
            completing = []
            if budget > 0:
                for s in self.running:
                    if s.done_prefill:
                        continue
                    left = s.prompt_len - s.prefilled
                    take = left if left < budget else budget
                    s.prefilled += take
                    prefill += take
                    budget -= take
                    if s.prefilled == s.prompt_len:
                        completing.append(s)
                    if budget <= 0:
                        break
            dur = self.step_s + self.decode_s * len(decoders) + self.prefill_s * prefill
            ideal_end = t0 + dur
            await asyncio.sleep(max(0.0, ideal_end - loop.time()))
            t1 = loop.time()
            self.steps += 1
            self.busy_s += dur
            if t1 - ideal_end > 0.002:
                self.overrun_s += t1 - ideal_end

            # results of the step
            now = time.monotonic()
            ended = False
            for s in decoders:
                if s.cancelled:
                    continue
                s.emitted += 1
                if s.stream:
                    s.event.set()
                if s.emitted >= s.max_tokens:
                    ended = True
            for s in completing:
                if s.cancelled:
                    continue
                s.done_prefill = True
                # the prompt's full blocks are now computed: hash them into the cache
                new = s.prompt_keys[len(s.held):]
                if new:
                    self.bm.promote(new)
                    s.reserved -= len(new)
                    s.held = s.held + new
                s.emitted = 1
                s.first_token_at = now
                if s.stream:
                    s.event.set()
                if s.emitted >= s.max_tokens:
                    ended = True
            self.generation_tokens_total += len(decoders) + len(completing)
            if ended:
                keep = []
                for s in self.running:
                    if not s.cancelled and s.emitted >= s.max_tokens:
                        self._end(s, aborted=False)
                    else:
                        keep.append(s)
                self.running = keep


# --------------------------------------------------------------------------------------------
# HTTP/1.1 server on asyncio.Protocol: keep-alive, pipelined requests answered in order,
# Content-Length or chunked request bodies, chunked streamed answers.


class BadRequest(Exception):
    pass


class Request:
    __slots__ = ("method", "path", "version", "headers", "body", "keep_alive")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}

MAX_HEADER = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


class HttpConn(asyncio.Protocol):
    def __init__(self, server: "Server"):
        self.server = server
        self.transport = None
        self.buf = bytearray()
        self.queue: collections.deque[Request] = collections.deque()
        self.busy = False
        self.closed = False
        self.seq: Seq | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.head_only = False  # answering a HEAD request: no body

    # transport callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.server.conns.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self.server.conns.discard(self)
        self.can_write.set()
        if self.seq is not None:
            self.server.engine.cancel(self.seq)
            self.seq.event.set()

    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def data_received(self, data):
        self.buf += data
        try:
            while True:
                req = self._parse()
                if req is None:
                    break
                self.queue.append(req)
        except BadRequest as e:
            self.queue.append(e)  # answered in turn, then the connection closes
            self.buf.clear()
            self.transport.pause_reading()
        if not self.busy and self.queue:
            self.busy = True
            asyncio.get_running_loop().create_task(self._serve())

    def _parse(self):
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                raise BadRequest("header too large")
            return None
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise BadRequest("bad request line")
        headers = {}
        for ln in lines[1:]:
            k, sep, v = ln.partition(":")
            if not sep:
                raise BadRequest("bad header line")
            headers[k.strip().lower()] = v.strip()
        pos = end + 4
        te = headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                le = buf.find(b"\r\n", pos)
                if le < 0:
                    return None
                try:
                    size = int(bytes(buf[pos:le]).split(b";")[0], 16)
                except ValueError:
                    raise BadRequest("bad chunk size")
                if size == 0:
                    # trailers until an empty line
                    t = buf.find(b"\r\n", le + 2)
                    while t >= 0 and t != le + 2:
                        le = t
                        t = buf.find(b"\r\n", le + 2)
                    if t < 0:
                        return None
                    pos = t + 2
                    break
                if len(buf) < le + 2 + size + 2:
                    return None
                body += buf[le + 2:le + 2 + size]
                pos = le + 2 + size + 2
                if len(body) > MAX_BODY:
                    raise BadRequest("body too large")
            body = bytes(body)
        else:
            try:
                n = int(headers.get("content-length", "0"))
            except ValueError:
                raise BadRequest("bad content-length")
            if n < 0 or n > MAX_BODY:
                raise BadRequest("bad content-length")
            if len(buf) < pos + n:
                if headers.get("expect", "").lower() == "100-continue" and not getattr(self, "_continued", False):
                    self._continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return None
            body = bytes(buf[pos:pos + n])
            pos += n
        self._continued = False
        del buf[:pos]
        r = Request()
        r.method = method
        r.path = target.split("?", 1)[0]
        r.version = version
        r.headers = headers
        r.body = body
        conn = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            r.keep_alive = "keep-alive" in conn
        else:
            r.keep_alive = "close" not in conn
        return r

    async def _serve(self):
        try:
            while self.queue and not self.closed:
                req = self.queue.popleft()
                if isinstance(req, BadRequest):
                    self.send(400, error_body(str(req), "invalid_request_error"), keep_alive=False)
                    self.transport.close()
                    return
                self.head_only = req.method == "HEAD"
                try:
                    keep = await self.server.handle(self, req)
                except Exception as e:  # never let one request take the server down
                    if not self.closed:
                        self.send(500, error_body("internal error: %r" % (e,), "server_error"), keep_alive=False)
                        self.transport.close()
                    return
                if not keep or not req.keep_alive:
                    if not self.closed:
                        self.transport.close()
                    return
        finally:
            self.busy = False
            self.seq = None

    # writing helpers
    def head(self, status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
        h = ["HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "OK")),
             "x-replica-id: ", self.server.replica_id, "\r\n"]
        for k, v in headers:
            h.append("%s: %s\r\n" % (k, v))
        if not keep_alive:
            h.append("connection: close\r\n")
        h.append("\r\n")
        return "".join(h).encode("latin-1")

    def send(self, status: int, body: bytes, ctype: str = "application/json", keep_alive: bool = True):
        if self.closed:
            return
        h = self.head(status, [("content-type", ctype), ("content-length", str(len(body)))], keep_alive)
        self.transport.write(h if self.head_only else h + body)


def error_body(msg: str, typ: str, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": msg, "type": typ, "param": None, "code": code}}).encode()


# --------------------------------------------------------------------------------------------
# The API


def prompt_of_chat(body: dict) -> str:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ValueError("'messages' must be a non-empty list")
    parts = []
    for m in msgs:
        if not isinstance(m, dict):
            raise ValueError("each message must be an object")
        c = m.get("content")
        if c is None:
            continue
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):
            texts = []
            for p in c:
                if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str):
                    texts.append(p["text"])
                elif isinstance(p, str):
                    texts.append(p)
            parts.append("\n".join(texts))
        else:
            raise ValueError("message content must be a string or a list of parts")
    return "\n".join(parts)


def prompt_of_completion(body: dict) -> str:
    p = body.get("prompt")
    if isinstance(p, str):
        return p
    if isinstance(p, list) and p and all(isinstance(x, str) for x in p):
        return "\n".join(p)  # several prompts are one prompt here
    if isinstance(p, list) and p and all(isinstance(x, int) for x in p):
        return " ".join(map(str, p))
    raise ValueError("'prompt' must be a string")


class Server:
    def __init__(self, a, engine: Engine):
        self.a = a
        self.engine = engine
        self.replica_id = a.id
        self.model = a.model
        self.conns: set[HttpConn] = set()
        self.started = time.time()
        self.requests_total = 0

    async def handle(self, c: HttpConn, r: Request) -> bool:
        path, method = r.path, r.method
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            return await self.generate(c, r, chat=path == "/v1/chat/completions")
        if method in ("GET", "HEAD"):
            if path in ("/health", "/healthz", "/ready", "/readyz", "/ping"):
                c.send(200, b"", "text/plain")
            elif path == "/metrics":
                c.send(200, self.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/v1/models":
                c.send(200, json.dumps({"object": "list", "data": [
                    {"id": self.model, "object": "model", "created": int(self.started), "owned_by": "vllm-like",
                     "root": self.model, "max_model_len": self.a.blocks * self.a.block_tokens}]}).encode())
            elif path in ("/get_model_info", "/model_info"):
                c.send(200, json.dumps({"model_path": self.model, "tokenizer_path": self.model,
                                        "is_generation": True, "served_model_name": self.model}).encode())
            elif path in ("/get_server_info", "/server_info"):
                c.send(200, json.dumps(self.server_info()).encode())
            elif path == "/version":
                c.send(200, b'{"version":"vllm-like-0.1"}')
            else:
                c.send(404, error_body("no route for %s %s" % (method, path), "not_found_error"))
            return True
        if path in ("/v1/chat/completions", "/v1/completions", "/health", "/metrics", "/v1/models"):
            c.send(405, error_body("method %s not allowed on %s" % (method, path), "invalid_request_error"))
            return True
        c.send(404, error_body("no route for %s %s" % (method, path), "not_found_error"))
        return True

    def server_info(self) -> dict:
        e = self.engine
        return {
            "replica_id": self.replica_id, "engine": "vllm-like", "model_path": self.model,
            "max_running_requests": self.a.slots, "max_total_num_tokens": self.a.blocks * self.a.block_tokens,
            "page_size": self.a.block_tokens, "chunked_prefill_size": self.a.max_batched_tokens,
            "max_num_batched_tokens": self.a.max_batched_tokens, "num_gpu_blocks": self.a.blocks,
            "step_ms": self.a.step_ms, "prefill_us_per_token": self.a.prefill_us_per_token,
            "decode_us_per_seq": self.a.decode_us_per_seq, "running": len(e.running), "waiting": len(e.waiting),
            "version": "vllm-like-0.1",
        }

    def metrics(self) -> str:
        e = self.engine
        usage = e.bm.in_use() / e.bm.capacity if e.bm.capacity else 0.0
        rate = e.hits / e.queries if e.queries else 0.0
        rows = [
            ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", len(e.running)),
            ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", len(e.waiting)),
            ("vllm:gpu_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", usage),
            ("vllm:prefix_cache_queries", "counter", "Prefix cache queries, in terms of number of queried tokens.", e.queries),
            ("vllm:prefix_cache_hits", "counter", "Prefix cache hits, in terms of number of cached tokens.", e.hits),
            ("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", e.prompt_tokens_total),
            ("vllm:generation_tokens", "counter", "Number of generation tokens processed.", e.generation_tokens_total),
            ("vllm:request_success", "counter", "Count of successfully processed requests.", e.finished_total),
            ("vllm_like:request_aborted", "counter", "Requests aborted (client gone).", e.aborted_total),
            ("vllm_like:engine_steps", "counter", "Scheduler steps run.", e.steps),
            ("vllm_like:engine_busy_seconds", "counter", "Modelled step time (the simulated GPU busy).", e.busy_s),
            ("vllm_like:engine_overrun_seconds", "counter",
             "Time steps ended more than 2 ms past their modelled end (simulator overhead).", e.overrun_s),
            ("vllm_like:prefix_cache_hit_rate", "gauge", "hits / queries since start.", rate),
            ("vllm_like:cached_blocks", "gauge", "Blocks in the prefix cache (held or free).", len(e.bm.ref)),
        ]
        out = []
        for name, typ, help_, v in rows:
            full = name + "_total" if typ == "counter" else name
            out.append("# HELP %s %s\n# TYPE %s %s\n%s %s\n" % (full, help_, full, typ, full, _num(v)))
        return "".join(out)

    async def generate(self, c: HttpConn, r: Request, chat: bool) -> bool:
        self.requests_total += 1
        try:
            body = json.loads(r.body)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            c.send(400, error_body("invalid JSON body: %s" % e, "invalid_request_error"))
            return True
        try:
            prompt = prompt_of_chat(body) if chat else prompt_of_completion(body)
            mt = body.get("max_completion_tokens", body.get("max_tokens"))
            if mt is None:
                mt = 16
            if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
                raise ValueError("'max_tokens' must be a positive integer")
        except ValueError as e:
            c.send(400, error_body(str(e), "invalid_request_error"))
            return True
        stream = bool(body.get("stream", False))
        so = body.get("stream_options")
        include_usage = bool(isinstance(so, dict) and so.get("include_usage"))
        model = body.get("model") if isinstance(body.get("model"), str) else self.model

        e = self.engine
        s = e.submit(prompt, mt, stream)
        if s.error:
            c.send(400, error_body("prompt of %d tokens plus max_tokens %d does not fit in the KV cache"
                                   % (s.prompt_len, mt), "invalid_request_error", s.error))
            return True
        c.seq = s
        created = int(time.time())
        rid = ("chatcmpl-%s-%d" if chat else "cmpl-%s-%d") % (self.replica_id, s.id)
        jmodel = json.dumps(model)
        try:
            if stream:
                return await self._stream(c, s, chat, rid, created, jmodel, include_usage)
            while not s.finished and not c.closed:
                await s.event.wait()
                s.event.clear()
            if c.closed or s.cancelled:
                return False
            text = " " + " ".join(s.words)
            usage = {"prompt_tokens": s.prompt_len, "completion_tokens": s.max_tokens,
                     "total_tokens": s.prompt_len + s.max_tokens,
                     "prompt_tokens_details": {"cached_tokens": s.cached}}
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text},
                          "logprobs": None, "finish_reason": "length"}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
                obj = "text_completion"
            out = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice], "usage": usage}
            c.send(200, json.dumps(out).encode())
            return True
        finally:
            e.cancel(s)  # no-op once finished
            c.seq = None

    async def _stream(self, c: HttpConn, s: Seq, chat: bool, rid: str, created: int, jmodel: str,
                      include_usage: bool) -> bool:
        # Pre-built JSON around the token text (the vocabulary needs no escaping).
        if chat:
            pre = ('data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,'
                   '"choices":[{"index":0,"delta":{' % (rid, created, jmodel))
            first_mid = '"role":"assistant","content":"'
            mid = '"content":"'
            post_more = '"},"logprobs":null,"finish_reason":null}]}\n\n'
            post_last = '"},"logprobs":null,"finish_reason":"length"}]}\n\n'
            obj = "chat.completion.chunk"
        else:
            pre = ('data: {"id":"%s","object":"text_completion","created":%d,"model":%s,'
                   '"choices":[{"index":0,' % (rid, created, jmodel))
            first_mid = mid = '"text":"'
            post_more = '","logprobs":null,"finish_reason":null}]}\n\n'
            post_last = '","logprobs":null,"finish_reason":"length"}]}\n\n'
            obj = "text_completion"
        if c.closed:
            return False
        c.transport.write(c.head(200, [("content-type", "text/event-stream"), ("cache-control", "no-cache"),
                                       ("transfer-encoding", "chunked")], True))
        sent = 0
        words = s.words
        n = s.max_tokens
        while True:
            await s.event.wait()
            s.event.clear()
            if c.closed:
                return False
            upto = s.emitted
            if upto > sent:
                parts = []
                for i in range(sent, upto):
                    parts.append(pre)
                    parts.append(first_mid if i == 0 else mid)
                    parts.append(" ")
                    parts.append(words[i])
                    parts.append(post_last if i == n - 1 else post_more)
                sent = upto
                if sent >= n:
                    if include_usage:
                        parts.append('data: {"id":"%s","object":"%s","created":%d,"model":%s,"choices":[],'
                                     '"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
                                     '"prompt_tokens_details":{"cached_tokens":%d}}}\n\n'
                                     % (rid, obj, created, jmodel, s.prompt_len, n, s.prompt_len + n, s.cached))
                    parts.append("data: [DONE]\n\n")
                data = "".join(parts).encode()
                # one HTTP chunk per step's worth of events (normally one event)
                chunk = b"%x\r\n%s\r\n" % (len(data), data)
                if sent >= n:
                    chunk += b"0\r\n\r\n"
                c.transport.write(chunk)
                if sent >= n:
                    return True
                if not c.can_write.is_set():
                    await c.can_write.wait()
                    if c.closed:
                        return False
            if s.finished and sent < n:  # aborted
                return False


def _num(v) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="A simulated vLLM-like model-server replica.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--id", default=None, help="replica id, sent as x-replica-id (default: r<port>)")
    p.add_argument("--model", default="vllm-like")
    p.add_argument("--slots", type=int, default=8, help="max running sequences")
    p.add_argument("--blocks", type=int, default=1024, help="KV-cache blocks")
    p.add_argument("--block-tokens", type=int, default=16, help="tokens per block")
    p.add_argument("--step-ms", type=float, default=12.0, help="fixed cost of one scheduler step")
    p.add_argument("--prefill-us-per-token", type=float, default=100.0)
    p.add_argument("--decode-us-per-seq", type=float, default=120.0)
    p.add_argument("--max-batched-tokens", type=int, default=2048)
    a = p.parse_args(argv)
    if a.id is None:
        a.id = "r%d" % a.port
    for k in ("slots", "blocks", "block_tokens", "max_batched_tokens"):
        if getattr(a, k) < 1:
            p.error("--%s must be at least 1" % k.replace("_", "-"))
    return a


async def amain(a) -> None:
    loop = asyncio.get_running_loop()
    engine = Engine(a)
    server = Server(a, engine)
    srv = await loop.create_server(lambda: HttpConn(server), a.host, a.port, reuse_address=True, backlog=1024)
    eng_task = loop.create_task(engine.run())
    stop = asyncio.Event()

    def on_signal():
        if stop.is_set():  # a second signal: leave now
            os._exit(1)
        stop.set()
        # never hang on the way out: exit anyway after 3 s
        t = threading.Timer(3.0, os._exit, (0,))
        t.daemon = True
        t.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except NotImplementedError:
            pass
    print("vllm_like %s listening on http://%s:%d" % (a.id, a.host, a.port), file=sys.stderr, flush=True)
    await stop.wait()
    srv.close()
    eng_task.cancel()
    for c in list(server.conns):
        c.transport.close()


def main(argv=None) -> None:
    a = parse_args(argv)
    if os.environ.get("VLLM_LIKE_PROFILE"):
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        try:
            asyncio.run(amain(a))
        finally:
            pr.disable()
            pstats.Stats(pr, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    else:
        asyncio.run(amain(a))


if __name__ == "__main__":
    main()
