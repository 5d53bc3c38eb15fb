#!/usr/bin/env python3
"""Request bodies for loadtest/prompt_size.sh (stdlib only).

  bodies.py OUTDIR SIZE_KB COUNT FIRST_USER

Writes OUTDIR/0.json .. OUTDIR/<COUNT-1>.json: OpenAI chat bodies
  {"model":"m","messages":[{"role":"system","content":"..."},
   {"role":"user","content":"short question"}],"user":"u-N","max_tokens":8}
whose system prompt is SIZE_KB KiB as it stands in the JSON (within one line of
text). Body i has user u-<FIRST_USER + i> and its own text, seeded by that number
and starting with it ("Document 7. ..."), so two bodies differ from their first
bytes on. The text carries JSON escapes: a \\n ending every line, \\" around some
words, \\t and a \\u00e9 here and there. Prints the body sizes in bytes, one line.
"""
import json
import os
import random
import sys

WORDS = ("the gateway routes each request to a replica that holds its prefix cache while "
         "queues stay short and prompts of any size pass through unchanged model server "
         "tokens blocks batch latency throughput session tenant policy ring hash index").split()


def system_prompt(n, target):
    rng = random.Random(n)
    lines = [f"Document {n}. You are assistant number {n}; follow the rules below."]
    size = len(json.dumps(lines[0])) - 2
    while size < target:
        words = rng.choices(WORDS, k=12)
        words[rng.randrange(12)] = '"' + words[rng.randrange(12)] + '"'
        if rng.random() < 0.2:
            words.append("caf\u00e9\tnote")
        line = " ".join(words)
        lines.append(line)
        size += len(json.dumps(line)) - 2 + 2  # the line and its "\n"
    return "\n".join(lines)


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    out, size_kb, count, first = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    os.makedirs(out, exist_ok=True)
    sizes = []
    for i in range(count):
        n = first + i
        body = json.dumps({"model": "m", "messages": [
            {"role": "system", "content": system_prompt(n, size_kb * 1024)},
            {"role": "user", "content": "short question"}],
            "user": f"u-{n}", "max_tokens": 8}, separators=(",", ":"))
        with open(os.path.join(out, f"{i}.json"), "w") as f:
            f.write(body)
        sizes.append(len(body))
    print(" ".join(map(str, sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
