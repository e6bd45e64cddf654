package sim

import "slices"

// The store's revision is one counter for all keys: each write that changes
// something takes the next revision, and a write that changes nothing takes
// none. The model checks revisions group by group; only the whole history can
// tell whether a revision was taken by no write at all, or by two.

// revisionsShownMax bounds how many missing revisions a violation lists.
const revisionsShownMax = 8

// revisionTaker is an acknowledged write that changed something.
type revisionTaker struct {
	rev    int64
	client int
}

// effective says whether an acknowledged write changed something, from its
// answer (the model has checked the answer against the state).
func effective(in opInput, out opOutput) bool {
	switch in.Kind {
	case kPut, kColdPut:
		return true
	case kCAS:
		return out.Ok
	case kLeaseEnd:
		return out.Gone != 0
	case kDelete, kDeletePrefix, kDeleteRange:
		return len(out.Deleted) > 0 && out.Deleted[0] > 0
	case kTxn:
		branch := in.Then
		if !out.Ok {
			branch = in.Else
		}
		for _, op := range branch {
			if op.Kind == kPut {
				return true
			}
		}
		return slices.ContainsFunc(out.Deleted, func(n int64) bool { return n > 0 })
	}
	return false
}

// checkRevisions accounts for every revision up to the final one: each was
// taken by exactly one acknowledged write, or may have been taken by a write
// whose outcome is unknown.
func (w *World) checkRevisions(final int64) {
	var takers []revisionTaker
	unknown := 0
	for _, op := range w.allWrites() {
		in, out := op.Input.(opInput), op.Output.(opOutput)
		switch {
		case out.Unknown:
			unknown++
		case effective(in, out):
			takers = append(takers, revisionTaker{rev: out.Rev, client: op.ClientId})
		}
	}
	if w.lkc != nil {
		takers, unknown = w.lkc.lockRevisionTakers(takers, unknown)
	}
	slices.SortFunc(takers, func(a, b revisionTaker) int { return int(a.rev - b.rev) })
	var missing []int64
	next := int64(1)
	for i, t := range takers {
		if i > 0 && takers[i-1].rev == t.rev {
			w.check.fail("revision %d was taken by two writes (clients %d and %d)", t.rev, takers[i-1].client, t.client)
		}
		for ; next < t.rev; next++ {
			missing = append(missing, next)
		}
		next = max(next, t.rev+1)
	}
	for ; next <= final; next++ {
		missing = append(missing, next)
	}
	if n := len(takers); n > 0 && takers[n-1].rev > final {
		w.check.fail("a write took revision %d, but the store ended at revision %d", takers[n-1].rev, final)
	}
	if len(missing) > unknown {
		w.check.fail("%d revisions were taken by no acknowledged write, but only %d writes have unknown outcomes: %v",
			len(missing), unknown, missing[:min(len(missing), revisionsShownMax)])
	}
}

// finalRevision is the revision of the first node still up.
func (w *World) finalRevision() (int64, bool) {
	for _, sn := range w.nodes {
		if !sn.gone && sn.n != nil {
			return sn.n.Status().Revision, true
		}
	}
	return 0, false
}
