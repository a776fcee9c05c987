package dedupe

import "time"

// Lease is how long a claim stays exclusive without Extend; holders extend
// well within it.
func (s *Store) Lease() time.Duration { return s.opts.Lease }
