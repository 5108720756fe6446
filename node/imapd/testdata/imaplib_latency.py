# Times single-client APPEND and STORE with Python's imaplib (Nagle on, as
# imaplib leaves it): imaplib writes a literal and its closing CRLF in two
# separate writes, which is what issue #21's 40 ms delayed-ACK stall needs.
# usage: imaplib_latency.py HOST PORT USER PASSWORD ITERATIONS SIZE
# prints: append_p50_ms=X store_p50_ms=Y
import imaplib
import statistics
import sys
import time

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
n, size = int(sys.argv[5]), int(sys.argv[6])

m = imaplib.IMAP4(host, port)
typ, _ = m.login(user, password)
assert typ == "OK", typ
head = b"From: lat@example.test\r\nSubject: latency\r\n\r\n"
line = b"x" * 78 + b"\r\n"
body = head + line * ((size - len(head)) // len(line))
appends = []
for i in range(n):
    t = time.perf_counter()
    typ, data = m.append("INBOX", None, None, body)
    appends.append(time.perf_counter() - t)
    assert typ == "OK", (typ, data)
typ, _ = m.select("INBOX")
assert typ == "OK", typ
stores = []
for i in range(n):
    flag = "+FLAGS" if i % 2 == 0 else "-FLAGS"
    t = time.perf_counter()
    typ, data = m.store("1", flag, r"(\Flagged)")
    stores.append(time.perf_counter() - t)
    assert typ == "OK", (typ, data)
m.logout()
print("append_p50_ms=%.2f store_p50_ms=%.2f" % (statistics.median(appends) * 1e3, statistics.median(stores) * 1e3))
