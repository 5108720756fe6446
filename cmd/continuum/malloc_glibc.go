//go:build linux && cgo

package main

/*
#include <malloc.h>
*/
import "C"

// pinMallocThreshold fixes glibc's mmap threshold at its default, 128 KiB.
// Pebble allocates its block cache and memtables with malloc (cgo), and
// every read of a big message's chunks passes 1 MiB blocks through the
// cache. glibc raises its threshold to the size of the largest mmap'd
// block freed (up to 32 MiB), after which 1 MiB blocks come from its
// per-thread arenas, and memory freed there mostly stays in the process:
// a node's memory outside Go grew with every 45 MB message, to 200–250 MB
// against Pebble's own 48 MiB of caches (docs/notes/large-messages.md,
// round 3). With the threshold fixed, a block of 128 KiB or more is
// mmap'd and unmapped when Pebble frees it. Setting it also stops glibc's
// dynamic adjustment of the trim threshold (left at its default).
func pinMallocThreshold() bool {
	return C.mallopt(C.M_MMAP_THRESHOLD, 128<<10) == 1
}
