package smtpd_test

import "github.com/continuum-mail/continuum/proto/storagepb"

type storagepbMessage = storagepb.Message
