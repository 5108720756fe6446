// Command continuum is the one binary of a Continuum cluster: `serve` runs a
// node, `dev` runs a local cluster (secure by default: its own CA, node and
// admin certificates, gossip key), `tls` issues the cluster's CA and
// certificates, and the admin subcommands talk to any node's admin address
// with an admin certificate (--ca/--cert/--key, CONTINUUM_CA/CERT/KEY, or the
// dev cluster's cluster.json).
package main
