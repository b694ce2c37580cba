"""seeds.py: writes the fuzzers' seed corpora from protocol/vectors/ (and the repository's
example configurations) into OUT/<harness>/, one file per seed.

rpc: every vector's request, as sent. sdk_frame: every vector's response as the unmasked
text frame a broker sends (first byte 0: frames), plus upgrade answers (first byte 1).
config: the example configurations and every JSON object in the vectors. placeholder:
every string in those that holds a brace.

Usage: python3 seeds.py OUT
"""
import glob
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def put(out, harness, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


def main(out):
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "protocol", "vectors", "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        docs.append(doc)
        for case in doc.get("cases", []):
            req = case.get("request", case.get("send"))
            if isinstance(req, str):
                put(out, "rpc", req)
            elif req is not None:
                put(out, "rpc", json.dumps(req))
            for key in ("response", "reply", "expect"):
                if key in case:
                    payload = json.dumps(case[key]).encode()
                    put(out, "sdk_frame", b"\0" + frame(1, payload))
                    put(out, "sdk_frame", b"\0" + frame(9, b"fxb?") + frame(1, payload[:4000]))
            if isinstance(case, dict):
                put(out, "config", json.dumps(case))
    put(out, "sdk_frame", b"\x01HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: fixture-broker.v1\r\n\r\n")
    put(out, "sdk_frame", b"\x01HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
    configs = [os.path.join(ROOT, "sdk-js", "examples", "express-pg", "fixture-broker.json")]
    configs += glob.glob(os.path.join(ROOT, "sdk-py", "tests", "**", "*.json"), recursive=True)
    for path in configs:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            put(out, "config", text)
            try:
                docs.append(json.loads(text))
            except ValueError:
                pass
    put(out, "config", '{"listen": "127.0.0.1:7357", "ports": {"range": "20000-20999", '
        '"quarantine_ms": 2000}, "grace_ms": 10000, "servers": {"api": {"command": '
        '["node", "server.js", "--port", "{ports.http}"], "ports": ["http", "admin"], '
        '"env": {"DB": "{fixtures.db.port}"}, "needs": {"db": {"kind": "port"}}, '
        '"ready": [{"tcp": "http"}]}}}')
    for s in ["{port}", "{ports.http}", "{ports.admin}", "{host}:{port}", "{bind}",
              "{fixtures.db.port}", "{fixtures.db.host}", "{lease}/{fixture}", "{{x}}",
              "--listen={bind}:{ports.http}"]:
        put(out, "placeholder", s)
    for doc in docs:
        for s in strings(doc):
            if "{" in s and len(s) < 512:
                put(out, "placeholder", s)


if __name__ == "__main__":
    main(sys.argv[1])
