"""Writes an AuthorizeBatch request body (a length-prefixed gRPC frame) for
h2load: N requests taken in turn from an `iamd bench` mix (JSON lines with
principal, action, resource, context), encoded by hand (no protobuf package
needed), with `revision_once` and `statement_table` set when asked.

    batch_body.py MIX N OUT_FILE [--revision-once] [--statement-table]

Prints the expected decisions of the batch, in order, one a line, so that
a run's answers can be checked (`iamd bench --batch` checks every one).
"""
import json
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def text(number, s):
    return field(number, s.encode())


def context_value(v):
    if isinstance(v, list):
        return field(2, b"".join(text(1, x) for x in v))
    return text(1, str(v))


def request(entry):
    body = text(1, entry["principal"]) + text(2, entry["action"]) + text(3, entry["resource"])
    for key, value in sorted(entry.get("context", {}).items()):
        body += field(4, text(1, key) + field(2, context_value(value)))
    return body


def main():
    mix_path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    once = "--revision-once" in sys.argv[4:]
    table = "--statement-table" in sys.argv[4:]
    with open(mix_path) as f:
        mix = [json.loads(line) for line in f if line.strip()]
    entries = [mix[i % len(mix)] for i in range(n)]
    body = b"".join(field(1, request(e)) for e in entries)
    if once:
        body += varint(2 << 3 | 0) + varint(1)
    if table:
        body += varint(3 << 3 | 0) + varint(1)
    with open(out, "wb") as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)
    for e in entries:
        print(e.get("expect") or e.get("decision") or "")


if __name__ == "__main__":
    main()
