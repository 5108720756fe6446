// Package logbridge routes the hclog output of hashicorp's libraries (raft,
// memberlist) into log/slog, so a node has one logger with fixed component
// names.
package logbridge
