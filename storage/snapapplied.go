package storage

// Applied returns the Raft index and term this view was applied up to
// (meta/applied): what a backup taken from the view is consistent with.
func (s *Snap) Applied() (index, term uint64, err error) { return s.reader.applied() }
