# Python's imaplib with COMPRESS=DEFLATE (RFC 4978) done by hand: imaplib
# has no COMPRESS, so after the tagged OK this client runs its reads and
# writes through zlib (raw DEFLATE, window 2^15), flushing after each write
# with the given flush: sync (Z_SYNC_FLUSH) or partial (Z_PARTIAL_FLUSH, as
# isync). bytewise: the last 64 compressed bytes of each flush (where its
# blocks end) are one send each (TCP_NODELAY).
# usage: imaplib_compress.py HOST PORT USER PASSWORD sync|partial bytewise|whole TAG
import base64
import imaplib
import os
import socket
import sys
import zlib

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
mode, how, tag = sys.argv[5], sys.argv[6], sys.argv[7]
imaplib.Commands["COMPRESS"] = ("AUTH", "SELECTED")
FLUSH = {"sync": zlib.Z_SYNC_FLUSH, "partial": zlib.Z_PARTIAL_FLUSH}[mode]


class CompressIMAP4(imaplib.IMAP4):
    comp = None

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ != "OK":
            raise SystemExit(f"COMPRESS DEFLATE: {typ} {data}")
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)
        self.plain = b""
        self.raw_in = 0
        self.plain_in = 0
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        if self.comp is None:
            return super().send(data)
        z = self.comp.compress(data) + self.comp.flush(FLUSH)
        if how == "bytewise":
            # The end of the flush (the block ends) one byte per send;
            # what comes before it (a literal's bulk) at once, so a
            # 200 KB APPEND is not 80,000 sends on a loaded machine.
            cut = max(0, len(z) - 64)
            if cut:
                self.sock.sendall(z[:cut])
            for i in range(cut, len(z)):
                self.sock.sendall(z[i:i + 1])
        else:
            self.sock.sendall(z)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise self.abort("connection closed")
        self.raw_in += len(chunk)
        out = self.decomp.decompress(chunk)
        self.plain_in += len(out)
        self.plain += out

    def read(self, size):
        if self.comp is None:
            return super().read(size)
        while len(self.plain) < size:
            self._fill()
        data, self.plain = self.plain[:size], self.plain[size:]
        return data

    def readline(self):
        if self.comp is None:
            return super().readline()
        while b"\n" not in self.plain:
            self._fill()
        i = self.plain.index(b"\n") + 1
        line, self.plain = self.plain[:i], self.plain[i:]
        return line


def ok(res, what):
    typ, data = res
    if typ != "OK":
        raise SystemExit(f"{what}: {typ} {data}")
    return data


m = CompressIMAP4(host, port)
ok(m.login(user, password), "login")
if "COMPRESS=DEFLATE" not in m.capabilities:
    raise SystemExit(f"COMPRESS=DEFLATE not advertised: {m.capabilities}")
m.compress()
caps = ok(m.capability(), "capability")[-1]  # the last: earlier ones may be queued
if b"COMPRESS=DEFLATE" in caps:
    raise SystemExit(f"COMPRESS=DEFLATE still advertised while active: {caps}")
typ, data = m._simple_command("COMPRESS", "DEFLATE")
if typ != "NO" or not data[0].startswith(b"[COMPRESSIONACTIVE]"):
    raise SystemExit(f"second COMPRESS: {typ} {data}")
box = f"Z{tag}"
ok(m.create(box), "create")
text = b"compressible line of text from imaplib\r\n" * 3000
noise = base64.encodebytes(os.urandom(60000)).replace(b"\n", b"\r\n")
msg = b"From: py@example.test\r\nSubject: zlib " + tag.encode() + b"\r\n\r\n" + text + noise
ok(m.append(box, r"(\Flagged)", None, msg), "append")
n = int(ok(m.select(box), "select")[0])
if n != 1:
    raise SystemExit(f"select: {n} messages")
found = ok(m.search(None, "SUBJECT", f'"zlib {tag}"'), "search")[0].split()
if found != [b"1"]:
    raise SystemExit(f"search: {found}")
fetched = ok(m.fetch("1", "(FLAGS BODY.PEEK[])"), "fetch")
if fetched[0][1] != msg or b"\\Flagged" not in fetched[0][0]:
    raise SystemExit(f"fetch: body intact {fetched[0][1] == msg}, flags {fetched[0][0]}")
ok(m.store("1", "+FLAGS", r"(\Seen)"), "store")
if b"\\Seen" not in ok(m.fetch("1", "(FLAGS)"), "fetch flags")[0]:
    raise SystemExit("store: no \\Seen")
for i in range(50):
    ok(m.noop(), "noop")
m.logout()
if m.raw_in >= m.plain_in:
    raise SystemExit(f"responses not compressed: {m.raw_in} bytes on the wire for {m.plain_in}")
print("ok", tag, mode, how, "in", m.raw_in, "for", m.plain_in)
