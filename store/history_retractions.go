package store

// A comment an operator took down (Moderator.Retract) is listed as a
// retraction in the live seconds, for viewers who saw it; history keeps
// no retractions but leaves the comment out of every History answer from
// then on, however long after its second the retraction came. Each store
// remembers a stream's last MaxHistoryRetractions retracted ids (the
// in-memory store for its history duration, Redis for 30 days or History
// if longer after the stream's last retraction), and History drops their
// comments as it reads.

// MaxHistoryRetractions is how many retracted comment ids a stream's
// history remembers: past it, the oldest retractions no longer hide their
// comments from replays.
const MaxHistoryRetractions = 10_000

// withoutRetracted returns secs without the comments gone reports, and
// without the seconds left with neither counts nor comments. Seconds it
// changes are copied: their comment slices may be shared.
func withoutRetracted(secs []Second, gone func(id string) bool) []Second {
	out := secs[:0]
	for _, s := range secs {
		n := 0
		for _, c := range s.Comments {
			if c.ID != "" && gone(c.ID) {
				n++
			}
		}
		if n > 0 {
			kept := make([]Comment, 0, len(s.Comments)-n)
			for _, c := range s.Comments {
				if c.ID == "" || !gone(c.ID) {
					kept = append(kept, c)
				}
			}
			s.Comments = kept
			if len(kept) == 0 {
				s.Comments = nil
				if len(s.Counts) == 0 {
					continue
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// WithoutRetracted returns secs without the comments whose ids are in
// gone, and without the seconds left with neither counts nor comments, as
// History answers: for an archive of the history (package archive).
func WithoutRetracted(secs []Second, gone map[string]struct{}) []Second {
	if len(gone) == 0 {
		return secs
	}
	return withoutRetracted(secs, func(id string) bool { _, ok := gone[id]; return ok })
}
