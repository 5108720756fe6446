# A held user deletes and expunges all of INBOX with Python's imaplib: the
# client sees the messages go (EXPUNGE responses, an empty mailbox).
# usage: imaplib_hold.py HOST PORT USER PASSWORD N
import imaplib
import sys

host, port, user, password, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])


def ok(res, what):
    typ, data = res
    if typ != "OK":
        raise SystemExit(f"{what}: {typ} {data}")
    return data


m = imaplib.IMAP4(host, port)
ok(m.login(user, password), "login")
count = int(ok(m.select("INBOX"), "select")[0])
if count != n:
    raise SystemExit(f"select: {count} messages, want {n}")
ok(m.store("1:*", "+FLAGS", r"(\Deleted)"), "store")
gone = [x for x in ok(m.expunge(), "expunge") if x]
if len(gone) != n:
    raise SystemExit(f"expunge: {gone}, want {n} expunged")
m.close()
count = int(ok(m.select("INBOX"), "select again")[0])
if count != 0:
    raise SystemExit(f"after expunge: {count} messages left")
m.logout()
print("ok expunged", len(gone))
