//go:build !linux || !cgo

package main

// pinMallocThreshold: without cgo Pebble's memory is Go's; on other
// systems the allocator is not glibc's. Nothing to do.
func pinMallocThreshold() bool { return false }
