"""The official `openai` Python client, pointed at Sluice, against sluice-replica.

Run by the Swift test `OpenAIClientTests` with the gateway's base URL as the only argument.
Exits non-zero (with the reason) if any call fails or returns something unexpected.
"""
import sys

import openai


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)

    chat = client.chat.completions.create(
        model="sim-7b", max_tokens=5, messages=[{"role": "user", "content": "hello through sluice"}]
    )
    assert chat.object == "chat.completion", chat
    assert chat.choices[0].message.content, chat
    assert chat.usage.completion_tokens == 5, chat.usage
    print("chat ok:", chat.choices[0].message.content)

    stream = client.chat.completions.create(
        model="sim-7b", max_tokens=6, stream=True, messages=[{"role": "user", "content": "stream please"}]
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) == 6, pieces
    print("stream ok:", "".join(pieces))

    # The client asks for base64 by default and decodes it back to floats.
    embeddings = client.embeddings.create(model="sim-embed", input=["one", "two", "three"])
    assert [item.index for item in embeddings.data] == [0, 1, 2], embeddings
    assert all(len(item.embedding) == 8 for item in embeddings.data), embeddings
    print("embeddings ok:", len(embeddings.data), "vectors")

    try:
        client.chat.completions.create(model="sim-7b", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-big": "h" * 20000})
    except openai.APIStatusError as error:
        assert error.status_code == 431, error
        assert error.body["code"] == "headers_too_large", error.body
        print("error ok:", error.status_code, error.body["code"])
    else:
        raise AssertionError("expected a 431")

    # A tenant limited to one request a minute: the SDK raises RateLimitError, with the hint.
    limited = openai.OpenAI(base_url=base_url, api_key="sk-limited", max_retries=0, timeout=10)
    limited.chat.completions.create(model="sim-7b", max_tokens=1, messages=[{"role": "user", "content": "one"}])
    try:
        limited.chat.completions.create(model="sim-7b", max_tokens=1, messages=[{"role": "user", "content": "two"}])
    except openai.RateLimitError as error:
        assert error.body["code"] == "rate_limit_exceeded", error.body
        headers = error.response.headers
        assert headers["x-ratelimit-remaining-requests"] == "0", dict(headers)
        assert headers["x-ratelimit-reset-requests"].endswith("s"), dict(headers)
        print("rate limit ok:", error.status_code, error.body["code"], "retry-after", headers["retry-after"])
    else:
        raise AssertionError("expected a 429")

    # A tenant with a token limit: streams are settled with the replica's usage, which the
    # gateway asks for and strips again when the client did not ask; past the limit, 429.
    tokens = openai.OpenAI(base_url=base_url, api_key="sk-tokens", max_retries=0, timeout=10)
    stream = tokens.chat.completions.create(
        model="sim-7b", max_tokens=6, stream=True, messages=[{"role": "user", "content": "count me"}]
    )
    chunks = list(stream)
    assert all(chunk.usage is None for chunk in chunks), chunks[-1]
    assert len([chunk for chunk in chunks if chunk.choices]) == 6, chunks
    stream = tokens.chat.completions.create(
        model="sim-7b", max_tokens=6, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count me"}],
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6, chunks[-1]
    try:
        tokens.chat.completions.create(model="sim-7b", max_tokens=240, messages=[{"role": "user", "content": "too much"}])
    except openai.RateLimitError as error:
        headers = error.response.headers
        assert int(headers["x-ratelimit-remaining-tokens"]) < 240, dict(headers)
        assert int(headers["retry-after"]) >= 1, dict(headers)
        assert "tokens per minute" in error.body["message"], error.body
        print("token limit ok:", error.status_code, "remaining", headers["x-ratelimit-remaining-tokens"],
              "reset", headers["x-ratelimit-reset-tokens"])
    else:
        raise AssertionError("expected a 429 for tokens")


if __name__ == "__main__":
    main(sys.argv[1])
