package main

import (
	"io"
	"strings"
	"testing"
)

func TestBenchFlags(t *testing.T) {
	cfg, asJSON, err := parseBenchFlags("imap", []string{"--server", "127.0.0.1:143", "--op", "login", "--sessions", "4", "--size", "20k", "--json", "--password-stdin"}, strings.NewReader("pw\n"), io.Discard)
	if err != nil || !asJSON || cfg.Sessions != 4 || cfg.Size != 20<<10 || cfg.Password != "pw" || cfg.Op != "login" || cfg.Duration == 0 {
		t.Fatalf("%+v %v %v", cfg, asJSON, err)
	}
	cfg, _, err = parseBenchFlags("lmtp", []string{"--server", "h:24", "--body", "corpus", "/tmp/c", "--count", "5"}, nil, io.Discard)
	if err != nil || cfg.CorpusDir != "/tmp/c" || cfg.Count != 5 || cfg.Duration != 0 {
		t.Fatalf("corpus: %+v %v", cfg, err)
	}
	for _, tc := range []struct {
		proto string
		args  []string
		want  string
	}{
		{"pop3", nil, `unknown workload "pop3"`},
		{"lmtp", []string{"--sessions", "0"}, "--sessions 0"},
		{"lmtp", []string{"--size", "huge"}, `size "huge"`},
		{"lmtp", []string{"--body", "corpus"}, "needs a directory"},
		{"lmtp", []string{"--duration", "soon"}, "invalid value"},
		{"lmtp", []string{"extra"}, `unexpected argument "extra"`},
		{"imap", []string{"--password-stdin"}, "empty password"},
	} {
		_, _, err := parseBenchFlags(tc.proto, tc.args, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want %q", tc.proto, tc.args, err, tc.want)
		}
	}
	if err := runBench(nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no arguments: %v", err)
	}
}
