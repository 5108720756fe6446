package imapd

import (
	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// QUOTA (RFC 9208) for the own protocol layer: each user has one quota
// root, "", over STORAGE (KiB), held in the replicated user record
// (quota_bytes, used_bytes) and enforced at delivery and APPEND by the
// FSM. SETQUOTA is an administrator's act (continuum user quota) and is
// refused here.

// quotaRoot is the only quota root a user has.
const quotaRoot = ""

func (c *conn) writeQuota() error {
	v := c.s.mail.View()
	used, limit, err := v.Quota(c.s.user.ID)
	v.Close()
	if err != nil {
		return reply(err)
	}
	c.w.Raw("* QUOTA ").String(quotaRoot).Raw(" (")
	if limit != 0 {
		c.w.Raw("STORAGE ").Number((used + 1023) / 1024).SP().Number(limit / 1024)
	}
	c.w.Raw(")").CRLF()
	return nil
}

// cmdGetQuotaRoot: GETQUOTAROOT mailbox (RFC 9208 §4.3).
func (c *conn) cmdGetQuotaRoot(cmd *wire.Command) error {
	if err := args(cmd, 1, 1); err != nil {
		return err
	}
	name, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	if _, err := c.s.lookupNow(name); err != nil {
		return reply(err)
	}
	c.w.Raw("* QUOTAROOT ").Mailbox(name).SP().String(quotaRoot).CRLF()
	return c.writeQuota()
}

// cmdGetQuota: GETQUOTA root (RFC 9208 §4.2).
func (c *conn) cmdGetQuota(cmd *wire.Command) error {
	if err := args(cmd, 1, 1); err != nil {
		return err
	}
	if root, ok := cmd.Args[0].AString(); !ok || root != quotaRoot {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: `No such quota root; the only one is ""`}
	}
	return c.writeQuota()
}

// cmdSetQuota: SETQUOTA is for the administrator (RFC 9208 §4.1 allows
// refusing it).
func (c *conn) cmdSetQuota(cmd *wire.Command) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "Quotas are set by the administrator"}
}
