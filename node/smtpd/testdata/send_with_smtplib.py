# TestSMTP/PythonSmtplib: Python's smtplib through a follower (argv: host
# port). STARTTLS, one message accepted, an unknown user refused with 550.
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "py@remote.test"; m["To"] = "py@example.test"; m["Subject"] = "from smtplib"
m["X-Test-Id"] = "python-1"
m.set_content("hello from python\n" * 50)
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20) as s:
    s.ehlo("python.test")
    assert s.has_extn("smtputf8") and s.has_extn("chunking"), s.esmtp_features
    s.starttls()
    s.ehlo("python.test")
    refused = s.send_message(m)
    assert not refused, refused
    try:
        s.sendmail("py@remote.test", ["nobody@example.test"], "Subject: x\r\n\r\nx\r\n")
        sys.exit("unknown user accepted")
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients["nobody@example.test"][0] == 550, e.recipients
