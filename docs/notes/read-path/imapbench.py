#!/usr/bin/env python3
"""Read-path measurements with Python imaplib (docs/notes/read-path.md).

  imapbench.py maildir DIR N             write N realistic messages (about 7.5 KiB,
                                         1.5 KiB of header) as a Maildir under DIR
  imapbench.py fetch HOST:PORT USER PW [RUNS]
                                         time FETCH 1:* (BODY.PEEK[HEADER.FIELDS
                                         (From To Subject Date Message-ID)]) on INBOX
  imapbench.py store HOST:PORT USER PW [N]
                                         time N single STOREs (+FLAGS/-FLAGS \\Flagged on
                                         message 1, alternating), one at a time

Prints the median and the spread; STORE prints p50/p90/p99.
"""
import imaplib
import os
import statistics
import sys
import time


def message(i):
    h = "Return-Path: <sender%d@example.org>\r\n" % (i % 50)
    for r in range(3):
        h += ("Received: from relay%d.example.org (relay%d.example.org [192.0.2.%d])\r\n"
              "\tby mx.example.test with ESMTPS id %08x\r\n"
              "\tfor <alice@example.test>; Mon, 30 Nov 2026 12:%02d:%02d +0000\r\n") % (r, r, i % 250, i * 7 + r, i % 60, r)
    h += ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;\r\n"
          "\th=from:to:subject:date:message-id; bh=" + "Ab9+" * 11 + "=;\r\n\tb=" + "Zm9vYmFy" * 40 + "\r\n")
    h += ("From: Sender %d <sender%d@example.org>\r\nTo: Alice <alice@example.test>\r\n"
          "Subject: Message number %d about the quarterly figures\r\n"
          "Date: Mon, 30 Nov 2026 12:%02d:%02d +0000\r\nMessage-ID: <%d.%d@example.org>\r\n"
          "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Transfer-Encoding: 8bit\r\n\r\n") % (i % 50, i % 50, i, i % 60, i % 60, i, i * 31)
    body, l = [], 0
    size = 0
    while size < 6 << 10:
        line = "Line %d of message %d: the figures for region %d went up by %d.%d percent.\r\n" % (
            l, i, l % 17, (i * l) % 23, l % 10)
        body.append(line)
        size += len(line)
        l += 1
    return h + "".join(body)


def maildir(root, n):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(n):
        with open(os.path.join(root, "cur", "%010d.M%dP1.bench:2," % (1700000000 + i, i)), "wb") as f:
            f.write(message(i).encode())


def connect(addr, user, pw):
    host, port = addr.rsplit(":", 1)
    c = imaplib.IMAP4(host, int(port))
    c.login(user, pw)
    return c


def fetch(addr, user, pw, runs):
    c = connect(addr, user, pw)
    typ, data = c.select("INBOX")
    n = int(data[0])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])")
        times.append(time.perf_counter() - t0)
        assert typ == "OK", typ
        got = sum(1 for d in data if isinstance(d, tuple))
        assert got == n, (got, n)
    c.logout()
    times.sort()
    print("FETCH header fields of %d messages: median %.1f ms, min %.1f ms, max %.1f ms (%d runs)" % (
        n, statistics.median(times) * 1e3, times[0] * 1e3, times[-1] * 1e3, runs))


def store(addr, user, pw, n):
    c = connect(addr, user, pw)
    c.select("INBOX")
    lat, failed = [], []
    for i in range(n):
        op = "+FLAGS.SILENT" if i % 2 == 0 else "-FLAGS.SILENT"
        t0 = time.perf_counter()
        typ, data = c.store("1", op, "(\\Flagged)")
        if typ != "OK":
            failed.append(data)
            continue
        lat.append(time.perf_counter() - t0)
    c.logout()
    if failed:
        print("%d STOREs failed, first: %r" % (len(failed), failed[0]))
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1e3
    print("STORE x%d: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms" % (n, q(0.5), q(0.9), q(0.99), lat[-1] * 1e3))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "maildir":
        maildir(sys.argv[2], int(sys.argv[3]))
    elif cmd == "fetch":
        fetch(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 7)
    elif cmd == "store":
        store(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 200)
    else:
        sys.exit(__doc__)
