package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealth probes a node's HTTP port, for container health checks (the
// image has no shell or curl): exit 0 when /readyz (or /healthz with
// --live) answers 200.
func runHealth(args []string) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	addr := fs.String("http", "127.0.0.1:7080", "the node's HTTP address")
	live := fs.Bool("live", false, "probe /healthz (the process is alive) instead of /readyz (it can serve)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	path := "/readyz"
	if *live {
		path = "/healthz"
	}
	c := http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + *addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + msg)
	}
	fmt.Println(msg)
	return nil
}
