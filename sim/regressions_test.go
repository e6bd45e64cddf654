package sim

import "testing"

// Every failure the simulator finds stays as a regression: the scenario as it
// was, and the seeds that failed. Code changes move trajectories, so these
// seeds are not guaranteed to hit the same schedule again; they keep the shape
// of the world that found the bug in every test run.
var regressions = []struct {
	file  string
	seeds []uint64
}{
	{"testdata/regressions/txn-memo-crashes.toml", []uint64{44}},
	{"testdata/regressions/txn-memo-clock-drift.toml", []uint64{23, 89}},
	{"testdata/regressions/snapshot-sync.toml", []uint64{152}},
	{"testdata/regressions/admin-leader-hint.toml", []uint64{10}},
	{"testdata/regressions/joiner-forgets-hardstate.toml", []uint64{2096}},
	{"testdata/regressions/advertise-learner.toml", []uint64{9}},
	{"testdata/regressions/lease-ttl-clock-offset.toml", []uint64{27, 63}},
	{"testdata/regressions/swarm-membership-leases.toml", []uint64{37, 148, 197}},
	{"testdata/regressions/swarm-lease-at-end.toml", []uint64{168}},
	{"testdata/regressions/swarm-jobs-idle-workers.toml", []uint64{20}},
	{"testdata/regressions/schedules-one-type.toml", []uint64{34}},
	{"testdata/regressions/hooks-created-and-trigger.toml", []uint64{1}},
	{"testdata/regressions/hooks-lag-split.toml", []uint64{8}},
	{"testdata/regressions/topics-token-prefix.toml", []uint64{1}},
	{"testdata/regressions/lease-ttl-slow-query.toml", []uint64{1027}},
	{"testdata/regressions/stamp-first-round.toml", []uint64{2, 47, 99}},
}

func TestRegressions(t *testing.T) {
	for _, r := range regressions {
		sc := loadScenario(t, r.file)
		for _, seed := range r.seeds {
			if res := Run(sc, seed, Options{}); !res.Passed {
				t.Errorf("%s seed %d: %v", r.file, seed, res.Violations)
			}
		}
	}
}
