# Drives one node with Python's imaplib and checks each answer.
# usage: imaplib_check.py HOST PORT USER PASSWORD TAG
import imaplib
import sys

host, port, user, password, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def ok(res, what):
    typ, data = res
    if typ != "OK":
        raise SystemExit(f"{what}: {typ} {data}")
    return data


m = imaplib.IMAP4(host, port)
ok(m.login(user, password), "login")
box = f"Py{tag}"
ok(m.create(box), "create")
msg = f"From: py@example.test\r\nSubject: imaplib {tag}\r\n\r\nbody from python {tag}\r\n".encode()
data = ok(m.append("INBOX", r"(\Flagged)", None, msg), "append")
if b"APPENDUID" not in data[0]:
    raise SystemExit(f"append: no APPENDUID: {data}")
n = int(ok(m.select("INBOX"), "select")[0])
found = ok(m.search(None, "SUBJECT", f'"imaplib {tag}"'), "search")[0].split()
if len(found) != 1:
    raise SystemExit(f"search: {found}")
seq = found[0]
fetched = ok(m.fetch(seq, "(FLAGS BODY.PEEK[])"), "fetch")
if msg not in fetched[0][1] or b"\\Flagged" not in fetched[0][0]:
    raise SystemExit(f"fetch: {fetched}")
ok(m.store(seq, "+FLAGS", r"(\Seen)"), "store")
flags = ok(m.fetch(seq, "(FLAGS)"), "fetch flags")[0]
if b"\\Seen" not in flags:
    raise SystemExit(f"store: {flags}")
ok(m.copy(seq, box), "copy")
uid = ok(m.uid("SEARCH", None, "SUBJECT", f'"imaplib {tag}"'), "uid search")[0].split()[0]
ok(m.uid("MOVE", uid, "Archive"), "move")
if int(ok(m.select("INBOX"), "reselect")[0]) != n - 1:
    raise SystemExit("move: message still in INBOX")
ok(m.select(box), "select copy")
ok(m.store("1", "+FLAGS", r"(\Deleted)"), "store deleted")
ok(m.expunge(), "expunge")
if int(ok(m.select(box), "select after expunge")[0]) != 0:
    raise SystemExit("expunge: message still there")
ok(m.select("Archive"), "select archive")
if not ok(m.search(None, "TEXT", f'"python {tag}"'), "search archive")[0].split():
    raise SystemExit("moved message not in Archive")
m.logout()
print("ok", tag)
