package sim

import "testing"

func TestZZLockStats(t *testing.T) {
	sc := loadScenario(t, "../scenarios/locks.toml")
	for seed := uint64(1); seed <= 5; seed++ {
		w := newWorld(sc, seed, Options{})
		w.loop()
		w.finish()
		st := map[string]int{}
		for _, op := range w.lkc.history {
			in, out := op.Input.(lockInput), op.Output.(lockOutput)
			name := lockOpNames[in.Kind]
			switch {
			case out.Unknown:
				name += "/unknown"
			case in.Kind == lkRead:
			case out.Ok:
				name += "/ok"
			default:
				name += "/no"
			}
			st[name]++
		}
		exp, expKeys, noTTL, del := 0, 0, 0, 0
		for _, s := range w.lkc.order {
			if s.ttlNs == 0 {
				noTTL++
			}
			if s.behavior == 1 {
				del++
			}
			if s.inv != nil && s.inv.expired {
				exp++
				expKeys += len(s.inv.keys)
			}
		}
		t.Logf("seed %d: %v sessions %d noTTL %d delete %d expired %d (keys %d) stale %d passed %v", seed, st, len(w.lkc.order), noTTL, del, exp, expKeys, w.res.LockStaleRefused, len(w.check.violations) == 0)
	}
}
