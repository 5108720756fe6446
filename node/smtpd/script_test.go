package smtpd_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// Script-driven protocol exchanges (cockroachdb/datadriven, as pebble's
// tests): testdata/script/*.txt hold sessions against the fixture's
// follower, one command line per input line, and the replies each draws.
//
//	session proto=smtp|lmtp [full]
//	EHLO client.test
//	----
//	220
//	> EHLO client.test
//	250
//
// Each session dials anew and reads the greeting. A reply is printed as its
// code and, when the last line starts with one, its enhanced status code;
// with "full", every line after the first of a multi-line reply is printed
// too (EHLO's capabilities). `go test -run TestSMTP/Scripts -rewrite`
// rewrites the expected output.
func runScripts(t *testing.T, addrs map[string]string) {
	datadriven.Walk(t, "testdata/script", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "session" {
				d.Fatalf(t, "unknown directive %q (want session)", d.Cmd)
			}
			var proto string
			d.ScanArgs(t, "proto", &proto)
			addr, ok := addrs[proto]
			if !ok {
				d.Fatalf(t, "proto %q: want smtp or lmtp", proto)
			}
			full := d.HasArg("full")
			cl := dial(t, addr)
			var out strings.Builder
			show := func() {
				code, lines, err := cl.reply()
				if err != nil {
					fmt.Fprintf(&out, "error: %v\n", err)
					return
				}
				fmt.Fprintf(&out, "%d%s\n", code, enhanced(lines[len(lines)-1]))
				if full && len(lines) > 1 {
					for _, l := range lines[1:] {
						fmt.Fprintf(&out, "  %s\n", l)
					}
				}
			}
			show() // the greeting
			for _, line := range strings.Split(d.Input, "\n") {
				fmt.Fprintf(&out, "> %s\n", line)
				cl.send(line + "\r\n")
				show()
			}
			return out.String()
		})
	})
}

// enhanced returns " X.Y.Z" when line starts with an enhanced status code.
func enhanced(line string) string {
	code, _, _ := strings.Cut(line, " ")
	parts := strings.Split(code, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return ""
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	return " " + code
}
