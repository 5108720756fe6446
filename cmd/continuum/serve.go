package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/config"
)

func runServe(args []string) error {
	cfg := config.Defaults()
	// The config file is read first so flags given beside it override it.
	var file string
	for i, a := range args {
		if a == "--config" || a == "-config" {
			if i+1 < len(args) {
				file = args[i+1]
			}
		} else if v, ok := cutPrefixAny(a, "--config=", "-config="); ok {
			file = v
		}
	}
	if file != "" {
		if err := config.Load(file, &cfg); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("config", file, "TOML configuration file")
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	pinMallocThreshold()
	if os.Getenv("GOMEMLIMIT") == "" {
		// One node per process: Go's soft limit from the node's memory
		// budget (package node, "Memory"); GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(node.GoMemoryLimit)
	}
	n, err := node.New(cfg, node.Options{Logger: log})
	if err != nil {
		return err
	}
	log.Info("node started", "id", cfg.ID, "site", cfg.Site, "smtp", cfg.SMTPAddr, "lmtp", cfg.LMTPAddr,
		"imap", cfg.IMAPAddr, "http", cfg.HTTPAddr, "grpc", cfg.GRPCAddr, "raft", cfg.RaftAddr, "gossip", cfg.GossipAddr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := n.Run(ctx)
	log.Info("shutting down")
	if err := n.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func cutPrefixAny(s string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if len(s) > len(p) && s[:len(p)] == p {
			return s[len(p):], true
		}
	}
	return "", false
}
