// Package config is the one validated configuration of a Continuum node: a
// TOML file and kebab-case flags fill the same struct, Validate checks it once
// at start, and every field is documented here.
package config
