"""Compresses segments the way a zlib-based IMAP client does for COMPRESS=DEFLATE.

Usage: zlib_flush.py partial|sync|full  (stdin and stdout: segments, each
a 4-byte big-endian length and its bytes). One raw DEFLATE stream (no zlib
header, window 2^15) for all segments; each segment is followed by a flush
of the given kind, as isync (Z_PARTIAL_FLUSH) or a sync-flushing client
does after each command.
"""
import struct
import sys
import zlib

MODES = {"partial": zlib.Z_PARTIAL_FLUSH, "sync": zlib.Z_SYNC_FLUSH, "full": zlib.Z_FULL_FLUSH}


def main():
    mode = MODES[sys.argv[1]]
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    while data:
        (n,) = struct.unpack(">I", data[:4])
        seg, data = data[4:4 + n], data[4 + n:]
        z = comp.compress(seg) + comp.flush(mode)
        out.write(struct.pack(">I", len(z)) + z)
    out.flush()


main()
