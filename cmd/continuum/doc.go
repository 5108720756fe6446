// Command continuum is the one binary of a Continuum cluster: `serve` runs a
// node, `dev` runs a local cluster, and the admin subcommands talk to any
// node's gRPC address.
package main
