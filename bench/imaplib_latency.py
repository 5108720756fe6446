# Single-client APPEND and STORE latency with Python's imaplib, one command
# at a time, Nagle on (as imaplib leaves it: it writes a literal and its
# closing CRLF separately, the pattern of issue #21's delayed-ACK stall).
# Written out and run by package bench (Imaplib); not a test.
# usage: imaplib_latency.py HOST PORT USER PASSWORD ITERATIONS SIZE MAILBOX
# prints one JSON line: {"append_ms": [...], "store_ms": [...]}
import imaplib
import json
import sys
import time

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
n, size, mailbox = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]

m = imaplib.IMAP4(host, port)
typ, _ = m.login(user, password)
assert typ == "OK", typ
head = b"From: lat@example.test\r\nTo: " + user.encode() + b"\r\nSubject: latency\r\n\r\n"
line = b"x" * 78 + b"\r\n"
appends = []
for i in range(n):
    # A distinct message each time (no deduplication by content).
    body = head + (b"%d\r\n" % i) + line * ((size - len(head)) // len(line))
    t = time.perf_counter()
    typ, data = m.append(mailbox, None, None, body)
    appends.append((time.perf_counter() - t) * 1e3)
    assert typ == "OK", (typ, data)
typ, _ = m.select(mailbox)
assert typ == "OK", typ
stores = []
for i in range(n):
    flag = "+FLAGS" if i % 2 == 0 else "-FLAGS"
    t = time.perf_counter()
    typ, data = m.store("1", flag, r"(\Flagged)")
    stores.append((time.perf_counter() - t) * 1e3)
    assert typ == "OK", (typ, data)
m.logout()
print(json.dumps({"append_ms": appends, "store_ms": stores}))
