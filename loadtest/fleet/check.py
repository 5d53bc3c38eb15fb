#!/usr/bin/env python3
"""Self-check of loadtest/fleet/vllm_like.py: starts one replica on a free port and checks the
API, the prefix cache (through its metrics counters), errors and a client leaving mid-stream.
Exits non-zero on the first failure.   python3 loadtest/fleet/check.py
"""

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:prefix_cache_queries_total",
         "vllm:prefix_cache_hits_total", "vllm:gpu_cache_usage_perc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(msg: str):
    print("FAIL:", msg)
    sys.exit(1)


def expect(cond, msg: str):
    if not cond:
        fail(msg)
    print("ok  ", msg)


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def req(self, method, path, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"content-type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        return r, r.read()

    def metrics(self):
        r, b = self.req("GET", "/metrics")
        out = {}
        for ln in b.decode().splitlines():
            if ln and not ln.startswith("#"):
                k, v = ln.rsplit(" ", 1)
                out[k] = float(v)
        return out


def long_prompt(seed: int, words: int) -> str:
    rng = random.Random(seed)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "kubernetes", "gateway", "routing", "cache",
             "inference", "replica", "token", "prefix", "throughput", "latency", "x", "of", "the", "a"]
    return " ".join(rng.choice(vocab) + ("," if rng.random() < 0.1 else "") for _ in range(words))


def main():
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "vllm_like.py"), "--port", str(port), "--id", "chk1",
                             "--step-ms", "2"], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while True:
            try:
                c = Client(port)
                r, _ = c.req("GET", "/health")
                if r.status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                fail("replica did not come up")
            time.sleep(0.05)
        expect(r.getheader("x-replica-id") == "chk1", "x-replica-id header on /health")

        m0 = c.metrics()
        for n in NAMES:
            expect(n in m0, "/metrics has %s (no labels)" % n)

        doc = long_prompt(1, 900)
        msgs = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": doc}]},
                {"role": "user", "content": "Summarise the document."}]

        # 1. streamed, cold
        c.conn.request("POST", "/v1/chat/completions",
                       body=json.dumps({"model": "m", "messages": msgs, "max_tokens": 5, "stream": True,
                                        "stream_options": {"include_usage": True}}),
                       headers={"content-type": "application/json"})
        r = c.conn.getresponse()
        expect(r.status == 200, "streamed chat: 200")
        expect(r.getheader("transfer-encoding", "").lower() == "chunked", "streamed chat: transfer-encoding chunked")
        expect(r.getheader("content-type", "").startswith("text/event-stream"), "streamed chat: text/event-stream")
        expect(r.getheader("x-replica-id") == "chk1", "streamed chat: x-replica-id")
        events = [ln[6:] for ln in r.read().decode().split("\n") if ln.startswith("data: ")]
        expect(events[-1] == "[DONE]", "stream ends with data: [DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        tok = [ch for ch in chunks if ch["choices"]]
        expect(len(tok) == 5, "one chunk per token (5)")
        expect(tok[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has the role")
        expect(tok[-1]["choices"][0]["finish_reason"] == "length", "last token chunk has finish_reason length")
        expect(chunks[-1].get("usage", {}).get("completion_tokens") == 5, "usage chunk with include_usage")
        streamed_text = "".join(ch["choices"][0]["delta"]["content"] for ch in tok)
        m1 = c.metrics()
        q1 = m1["vllm:prefix_cache_queries_total"] - m0["vllm:prefix_cache_queries_total"]
        h1 = m1["vllm:prefix_cache_hits_total"] - m0["vllm:prefix_cache_hits_total"]
        expect(q1 > 900 and h1 == 0, "first request: %d tokens queried, %d hits" % (q1, h1))

        # 2. the same prompt, not streamed
        r, b = c.req("POST", "/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 5})
        expect(r.status == 200, "non-streamed chat: 200")
        j = json.loads(b)
        expect(j["choices"][0]["message"]["content"] == streamed_text, "same prompt, same deterministic text")
        expect(j["usage"]["completion_tokens"] == 5 and j["usage"]["prompt_tokens"] == q1, "usage in the JSON answer")
        m2 = c.metrics()
        q2 = m2["vllm:prefix_cache_queries_total"] - m1["vllm:prefix_cache_queries_total"]
        h2 = m2["vllm:prefix_cache_hits_total"] - m1["vllm:prefix_cache_hits_total"]
        expect(q2 == q1 and h2 >= q2 - 16, "second request hit the prefix cache: %d of %d tokens" % (h2, q2))
        expect(j["usage"]["prompt_tokens_details"]["cached_tokens"] == h2, "usage reports cached tokens")

        # 3. and twice more the other way round (non-streamed, then streamed), a new prompt
        doc2 = long_prompt(2, 700)
        body = {"model": "m", "messages": [{"role": "user", "content": doc2}], "max_tokens": 3}
        r, b = c.req("POST", "/v1/chat/completions", body)
        m3 = c.metrics()
        body["stream"] = True
        r, b = c.req("POST", "/v1/chat/completions", body)
        expect(r.status == 200 and b.decode().rstrip().endswith("data: [DONE]"), "streamed chat again")
        m4 = c.metrics()
        h4 = m4["vllm:prefix_cache_hits_total"] - m3["vllm:prefix_cache_hits_total"]
        expect(h4 > 600, "streamed repeat of a non-streamed prompt hit the cache: %d tokens" % h4)

        # 4. the generated tokens' blocks are cached too: prompt + answer as the next prompt
        p = long_prompt(3, 64)
        r, b = c.req("POST", "/v1/completions", {"model": "m", "prompt": p, "max_tokens": 40})
        expect(r.status == 200, "/v1/completions: 200")
        text = json.loads(b)["choices"][0]["text"]
        m5 = c.metrics()
        r, b = c.req("POST", "/v1/completions", {"model": "m", "prompt": p + text + " more", "max_tokens": 1})
        m6 = c.metrics()
        q6 = m6["vllm:prefix_cache_queries_total"] - m5["vllm:prefix_cache_queries_total"]
        h6 = m6["vllm:prefix_cache_hits_total"] - m5["vllm:prefix_cache_hits_total"]
        ptoks = m5["vllm:prefix_cache_queries_total"] - m4["vllm:prefix_cache_queries_total"]
        expect(h6 > ptoks, "generated tokens' blocks cached: %d hits > %d prompt tokens (of %d)" % (h6, ptoks, q6))

        # 5. errors
        r, b = c.req("POST", "/v1/chat/completions", raw=b"{not json")
        expect(r.status == 400 and "error" in json.loads(b), "bad JSON: 400 with a JSON error")
        r, b = c.req("POST", "/v1/chat/completions", {"messages": "nope"})
        expect(r.status == 400, "bad messages: 400")
        r, b = c.req("GET", "/nope")
        expect(r.status == 404 and "error" in json.loads(b), "unknown path: 404")
        for path in ("/v1/models", "/get_model_info", "/get_server_info", "/server_info", "/model_info"):
            r, b = c.req("GET", path)
            expect(r.status == 200 and isinstance(json.loads(b), dict), "GET %s: 200 JSON" % path)
        r, b = c.req("GET", "/health")
        expect(r.status == 200, "keep-alive: the same connection still answers")

        # 6. a client that leaves mid-stream frees its slot
        s = socket.create_connection(("127.0.0.1", port))
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000 // 16,
                           "stream": True}).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: %d\r\n\r\n%s" % (len(body), body))
        got = s.recv(4096)
        expect(got.startswith(b"HTTP/1.1 200"), "long stream started")
        time.sleep(0.1)
        expect(c.metrics()["vllm:num_requests_running"] == 1, "long stream is running")
        s.close()
        t = time.time()
        while c.metrics()["vllm:num_requests_running"] != 0:
            if time.time() - t > 2:
                fail("slot not freed after the client left")
            time.sleep(0.02)
        m = c.metrics()
        expect(m["vllm:num_requests_running"] == 0 and m["vllm_like:request_aborted_total"] >= 1,
               "client gone mid-stream: slot freed, abort counted")
        expect(m["vllm:gpu_cache_usage_perc"] == 0.0, "no KV blocks held when idle")
        print("PASS")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
