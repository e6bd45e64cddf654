//go:build aspenbugs

package sim

import (
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/bugs"
)

// Each checker must be able to fail. A planted bug is switched on through the
// scenario's [bugs] table; the checker has to report it within 200 seeds, and
// the failing seed has to replay to the same trace and the same verdict.
func TestPlantedBugsAreCaught(t *testing.T) {
	cases := []struct {
		file, want string
	}{
		{"testdata/bugs/local-reads.toml", "not linearizable"},
		{"testdata/bugs/no-dedup.toml", "not linearizable"},
		{"testdata/bugs/recompute-revision.toml", "replicas diverge"},
		{"testdata/bugs/skip-sync.toml", "two leaders in term"},
		{"testdata/bugs/skip-sync.toml", "voted twice in term"},
		{"testdata/bugs/skip-sync.toml", "committed entry"},
		{"testdata/bugs/skip-sync.toml", "raft log corrupted"},
		{"testdata/bugs/early-conf-change.toml", ""}, // any checker: divergence, wrong final membership, ...
		{"testdata/bugs/jobs-completion-without-token.toml", "(stale token)"},
		{"testdata/bugs/jobs-expiry-keeps-attempt.toml", "attempts after"},
		{"testdata/bugs/schedules-tick-local-clock.toml", "report schedule fires differently"},
	}
	for _, c := range cases {
		sc := loadScenario(t, c.file)
		t.Run(sc.Name+"/"+c.want, func(t *testing.T) {
			seed, res, ok := firstCaught(sc, c.want, 200)
			if !ok {
				t.Fatalf("no seed in 1..200 reported %q", c.want)
			}
			folder, err := WriteArtifact(t.TempDir(), sc, seed, res, "test")
			if err != nil {
				t.Fatalf("write artifact: %v", err)
			}
			replaySc, replaySeed, recorded, err := ReadArtifact(folder)
			if err != nil {
				t.Fatalf("read artifact: %v", err)
			}
			again := Run(replaySc, replaySeed, Options{})
			if again.TraceHash != recorded || again.Passed {
				t.Fatalf("artifact for seed %d did not replay: hash %s then %s, passed %v", seed, recorded, again.TraceHash, again.Passed)
			}
			t.Logf("caught at seed %d: %s", seed, res.Violations[0])
		})
	}
}

func firstCaught(sc Scenario, want string, seeds int) (uint64, Result, bool) {
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		r := Run(sc, seed, Options{})
		for _, v := range r.Violations {
			if strings.Contains(v, want) {
				return seed, r, true
			}
		}
	}
	return 0, Result{}, false
}

// The bugs below must be caught by a shipped scenario as it is, with only the
// bug planted: that is what a sweep in CI would see. Each row names the
// scenario whose sweep catches the bug first (see DESIGN.md for the seeds) and
// the violation expected; the test searches seeds 1..200.
var shippedCatches = []struct {
	bug      bugs.Bug
	scenario string
	want     string
}{
	// Crashes in short windows: a vote forgotten in a crash right after it
	// was granted (never caught without crash points), acknowledgements sent
	// before the sync they vouch for (raft finds its log shorter than the
	// commit index it was promised).
	{bugs.VoteUnsynced, "crash-points", "two leaders in term"},
	{bugs.EarlyAcks, "crashes", "raft log corrupted"},
	// Restarts compared with what was made durable: the reload checker and
	// load's own checks.
	{bugs.StaleTail, "clock-drift", "log term goes down"},
	{bugs.SnapshotKeepsKeys, "crashes", "reloaded from disk differs: state hash"},
	{bugs.NoopBump, "baseline", "revisions were taken by no acknowledged write"},
	{bugs.CreateRevReset, "baseline", "not linearizable"},
	{bugs.EventRevision, "baseline", "but the write that made it is at revision"},
	{bugs.RangeEndInclusive, "baseline", "not linearizable"},
	{bugs.ReuseRemovedID, "swarm-membership", "forbidden membership change accepted: re-add removed node"},
	{bugs.TransferToLearner, "swarm-membership", "forbidden leader transfer accepted: transfer leadership to learner"},
	// Leases and replicated time: apply reading the replica's own clock gives
	// each replica its own deadlines (leases, seed 1: the state hashes part at
	// the first grant); a new leader without its grace expires at once leases
	// whose renewals a failover held up (leases, seed 1: the lease checker).
	{bugs.LeaseLocalClock, "leases", "replicas diverge"},
	{bugs.NoLeaseGrace, "leases", "after a new leader's grace"},
	// A leader that reads its role from the last Ready appends, unstamped,
	// the proposals that reach it in the loop round its winning vote came
	// in (the scenario's round_us_max); each applies at the time of the
	// last stamp before it, however old.
	{bugs.StampByRole, "leases", "without its leader's stamp"},
	// Jobs: a complete accepted under a superseded token is acknowledged to
	// a worker whose lease another worker holds now (the acknowledged token
	// is not the one the job succeeded from); an expiry that gives the
	// attempt back leaves the job counting fewer attempts than its leases.
	{bugs.CompletionWithoutToken, "jobs", "(stale token)"},
	{bugs.ExpiryKeepsAttempt, "jobs", "attempts after"},
	// Schedules: a fire that reads the replica's own clock records (and
	// submits its job) at that replica's time, so replicas apply the same
	// fire differently (schedules, seed 1: the first fire a follower
	// applies).
	{bugs.TickLocalClock, "schedules", "report schedule fires differently"},
	// Hooks (hooks, seed 1 each): deliveries proposed with the write they
	// match, at the revision the leader guesses, name changes that never
	// committed (a compare that failed, a guess that another write took);
	// a leader firing the changes it watched applied fires them again after
	// a failover; a match dropped on a full backlog leaves a gap no resync
	// covers.
	{bugs.HookMatchOnProposal, "hooks", "a change never committed"},
	{bugs.HookFireFromWatch, "hooks", "delivered twice"},
	{bugs.HookDropWhenFull, "hooks", "a gap"},
	// Topics (topics, seed 1): an offset taken from the count of retained
	// messages repeats one as soon as retention by count drops a message.
	{bugs.TopicOffsetReuse, "topics", "offsets not dense"},
	// Consumer groups (topics, seed 1 or 2 each): a commit naming a stale
	// generation, accepted from the partition's owner, is a commit the
	// reports show under a generation the member has left behind (a commit
	// in flight while a rebalance gave it a partition); a leaver's
	// partitions handed out in map order make replicas report different
	// owners; a simulated member that commits before it processes loses
	// what it read when it crashes between the two.
	{bugs.GroupStaleCommit, "topics", "commit from a stale generation accepted"},
	{bugs.AssignmentMapOrder, "topics", "report group changes differently"},
	{bugs.CommitBeforeProcess, "topics", "was never processed by group"},
	// Sessions and locks (locks, seed 1 each): an acquire that ignores the
	// holder takes a held key (the committed timeline sees the lock change
	// hands without a release); one that ignores the lock delay takes a
	// released key before the delay ends, by the entry's replicated time;
	// an invalidation that keeps its keys leaves them held by a session
	// that is gone.
	{bugs.LockIgnoresHolder, "locks", "while session"},
	{bugs.LockDelayIgnored, "locks", "before the lock delay"},
	{bugs.InvalidateKeepsLocks, "locks", "but it still holds lock key"},
}

func TestPlantedBugsCaughtByShippedScenarios(t *testing.T) {
	for _, c := range shippedCatches {
		sc := loadScenario(t, "../scenarios/"+c.scenario+".toml").PlantBug(c.bug)
		t.Run(c.bug.String()+"/"+c.scenario, func(t *testing.T) {
			seed, res, ok := firstCaught(sc, c.want, 200)
			if !ok {
				t.Fatalf("no seed in 1..200 of %s reported %q", c.scenario, c.want)
			}
			t.Logf("caught at seed %d: %s", seed, res.Violations[0])
		})
	}
}

// The lock history alone (porcupine, lockmodel.go) must catch each lock
// bug too, not only the checks on the committed timeline: two holders at
// once, a key taken before its lock delay could have ended, a key still
// held after its session's invalidation.
func TestPlantedLockBugsFailLockHistory(t *testing.T) {
	for _, b := range []bugs.Bug{bugs.LockIgnoresHolder, bugs.LockDelayIgnored, bugs.InvalidateKeepsLocks} {
		sc := loadScenario(t, "../scenarios/locks.toml").PlantBug(b)
		t.Run(b.String(), func(t *testing.T) {
			for seed := uint64(1); seed <= 10; seed++ {
				if r := Run(sc, seed, Options{}); r.LockHistory == "illegal" {
					t.Logf("lock history illegal at seed %d", seed)
					return
				}
			}
			t.Fatal("no seed in 1..10 made the lock history illegal")
		})
	}
}
