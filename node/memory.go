package node

// GoMemoryLimit is the Go runtime's soft memory limit for a process that
// runs one node (`continuum serve` sets it with debug.SetMemoryLimit
// unless GOMEMLIMIT is given): the Go part of the node's budget (doc.go,
// "Memory"). It is a backstop, not the working point: with GOGC 100 the
// heap goal stays under it while the live heap is under ~90 MiB, and
// above it the collector runs sooner instead of the heap growing. Pebble's
// caches and memtables are not Go memory and not counted in it.
const GoMemoryLimit = 192 << 20
