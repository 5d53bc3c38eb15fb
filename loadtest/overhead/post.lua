-- wrk script for loadtest/overhead.sh: a ~1 KB OpenAI chat-completion request.
-- Every request is identical; wrk pre-builds it once, so the script adds no
-- per-request Lua cost.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.body = [[{"model":"llama-3.1-8b-instruct","messages":[{"role":"system","content":"You are a concise assistant. Answer in plain English and keep the reply short."},{"role":"user","content":"I am running a benchmark of an HTTP/1.1 inference gateway that sits in front of a pool of model servers. The gateway parses each request, picks a replica with a round-robin policy, forwards the body unchanged and streams the response back to the client. Please explain, in two or three sentences, which parts of that data path usually dominate the per-request overhead of a reverse proxy: connection handling, header parsing, body copying, upstream connection reuse, or scheduling across worker threads. Also mention whether keep-alive to the upstream matters when the backend answers in well under a millisecond, and what a reasonable p99 latency budget for the proxy itself would be on a small two core machine under sixty-four concurrent connections."}],"max_tokens":128,"temperature":0.2,"stream":false}]]
