#!/usr/bin/env python3
"""Hostile requests carrying text that is not UTF-8, over every API route.

One list, two users: `python3 tests/fuzz/corpus_request.py DIR` writes them
as seeds for tests/fuzz/fuzz_request.c (the committed tests/fuzz/corpus_request
was made so), and tests/integration_hostile.py sends them to a running vigild.

A request is (who, method, target, headers, body): who is 0 anonymous,
1 an admin token, 2 an admin session cookie, 3 a session limited to cam1
(the fuzz target adds the credentials; the suite sends its own); target and
body are bytes; headers a list of (name, bytes).
"""
import hashlib
import json
import os
import sys

# Every way a byte string can fail to be UTF-8, and text a fixed-size cut
# ("%.64s", a 96-byte audit field) splits inside a character.
BAD = [
    b"\xff",                  # never a UTF-8 byte
    b"\xfe\xfe",
    b"\x80",                  # a continuation byte alone
    b"\xc0\xaf",              # overlong '/'
    b"\xe0\x80\xaf",          # overlong '/', 3 bytes
    b"\xf0\x80\x80\xaf",      # overlong '/', 4 bytes
    b"\xed\xa0\x80",          # high surrogate
    b"\xed\xbf\xbf",          # low surrogate
    b"\xf4\x90\x80\x80",      # past U+10FFFF
    b"\xc3",                  # cut 2-byte sequence
    b"x\xe2\x82",             # cut 3-byte sequence
    b"\xf0\x9f\x93",          # cut 4-byte sequence
    "\u0416".encode() * 70 + b"\xe2",  # long Cyrillic text, then a cut
]

# (method, pattern, allowed query key or None, a JSON body of the right shape or None)
ROUTES = [
    ("GET", "/healthz", None, None),
    ("POST", "/api/v1/login", None, {"user": "admin", "password": "x"}),
    ("POST", "/api/v1/logout", None, None),
    ("GET", "/api/v1/me", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/api/v1/sources", None, None),
    ("GET", "/api/v1/sources/{}", None, None),
    ("PATCH", "/api/v1/sources/{}", None, {"keep_days": 90}),
    ("GET", "/api/v1/sources/{}/segments", "from", None),
    ("GET", "/api/v1/sources/{}/timeline", "to", None),
    ("GET", "/api/v1/storage", None, None),
    ("GET", "/api/v1/holds", "all", None),
    ("POST", "/api/v1/holds", None, {"case": "C-1", "reason": "r", "sources": ["cam1"],
                                     "from": 1, "to": 2}),
    ("POST", "/api/v1/holds/{}/release", None, {"reason": "closed"}),
    ("GET", "/api/v1/destruction-log", "from", None),
    ("GET", "/api/v1/users", None, None),
    ("POST", "/api/v1/users", None, {"name": "newbie", "role": "auditor",
                                     "password": "short", "sources": ["cam1"]}),
    ("PATCH", "/api/v1/users/{}", None, {"role": "security"}),
    ("DELETE", "/api/v1/users/{}", None, None),
    ("GET", "/api/v1/tokens", None, None),
    ("POST", "/api/v1/tokens", None, {"name": "pbx", "permissions": ["calls"]}),
    ("DELETE", "/api/v1/tokens/{}", None, None),
    ("GET", "/api/v1/audit", "action", None),
    ("GET", "/api/v1/audit/verify", None, None),
]

PARAM = {"sources": b"cam1", "holds": b"1", "users": b"nobody", "tokens": b"999"}


def pct(b):
    return "".join("%%%02X" % c for c in b).encode()


def fill(pattern, value):
    """The pattern with its {} replaced by value (bytes)."""
    if "{}" not in pattern:
        return pattern.encode()
    head, tail = pattern.split("{}")
    return head.encode() + value + tail.encode()


def json_with(shape, bad, where):
    """shape's JSON with bad bytes as a key or as the first string value."""
    text = json.dumps(shape).encode()
    if where == "key":
        return b'{"' + bad + b'":1,' + text[1:]
    for k, v in shape.items():
        if isinstance(v, str):
            return text.replace(json.dumps(v).encode(), b'"' + bad + b'"', 1)
    return b'{"' + bad + b'":"' + bad + b'"}'


def requests(stride=1):
    """Every request; stride n keeps one bad string in n per route (the seeds:
    the fuzzer combines them, the suite sends them all)."""
    out = []
    json_ct = [("Content-Type", b"application/json")]
    for ri, (method, pattern, key, shape) in enumerate(ROUTES):
        param = PARAM.get(pattern.split("/")[3] if pattern.count("/") > 3 else "", b"cam1")
        plain = fill(pattern, param)
        body = json.dumps(shape).encode() if shape else b""
        hdrs = json_ct if shape else []
        for who in (0, 2):
            out.append((who, method, plain, hdrs, body))  # the well-formed request
            for i, bad in enumerate(BAD):
                if (i + ri) % stride:
                    continue
                # the path: a parameter or an extra segment, escaped and raw
                seg = fill(pattern, bad) if "{}" in pattern else plain + b"/" + bad
                seg_pct = fill(pattern, pct(bad)) if "{}" in pattern else plain + b"/" + pct(bad)
                out.append((who, method, seg_pct, hdrs, body))
                out.append((who, method, seg, hdrs, body))
                # the query: an unknown key, and the route's own key
                out.append((who, method, plain + b"?" + pct(bad) + b"=1", hdrs, body))
                if key:
                    out.append((who, method, plain + b"?" + key.encode() + b"=" + pct(bad),
                                hdrs, body))
                # headers a handler reads, and one nobody reads
                out.append((who, method, plain, hdrs + [("X-Forwarded-For", bad),
                                                        ("User-Agent", bad)], body))
                if shape:
                    out.append((who, method, plain, [("Content-Type",
                                                      b"application/json" + bad)], body))
                    # JSON: raw bytes (not JSON at all), then valid JSON with
                    # text a message cuts, and a lone surrogate escape
                    out.append((who, method, plain, json_ct, json_with(shape, bad, "key")))
                    out.append((who, method, plain, json_ct, json_with(shape, bad, "value")))
            if shape:
                # valid JSON whose text a message or a field cuts inside a
                # character, and a lone surrogate escape
                long_text = ("a" + "\u0416" * 40).encode()
                out.append((who, method, plain, json_ct, json_with(shape, long_text, "key")))
                out.append((who, method, plain, json_ct, json_with(shape, long_text, "value")))
                out.append((who, method, plain, json_ct, json_with(shape, b"\\ud800", "value")))
            # the other methods on the same path (405), carrying bad bytes too
            for other in ("GET", "POST", "PATCH", "DELETE"):
                if other != method:
                    bad = BAD[ri % len(BAD)]
                    out.append((who, other, plain + b"?" + pct(bad) + b"=1",
                                json_ct if other in ("POST", "PATCH") else [],
                                b'{"' + bad + b'":1}' if other in ("POST", "PATCH") else b""))
            if who == 0:
                for bad in BAD[:3]:
                    out.append((0, method, plain, hdrs + [("Authorization", b"Bearer " + bad)],
                                body))
                    out.append((0, method, plain, hdrs + [("Cookie", b"vigil_session=" + bad)],
                                body))
    return out


def encode_seed(req):
    who, method, target, headers, body = req
    head = bytes([who]) + method.encode() + b" " + target + b"\n"
    for name, value in headers:
        head += name.encode() + b": " + value + b"\n"
    return head + b"\n" + body


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    seeds = {encode_seed(r) for r in requests(stride=6)}
    for s in seeds:
        with open(os.path.join(out_dir, hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)
    print("%d seeds in %s" % (len(seeds), out_dir))


if __name__ == "__main__":
    main()
