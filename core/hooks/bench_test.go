package hooks_test

import (
	"fmt"
	"testing"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// BenchmarkPutWithHooks is the apply of a put (10^4 keys, 100-byte values)
// with no hooks, with 10 and 100 hooks none of which match, and with 100
// of which one matches every put (its delivery job submitted in the same
// apply). The bound: matching costs under 10% of a put with 100
// hooks.
func BenchmarkPutWithHooks(b *testing.B) {
	for _, tc := range []struct {
		name     string
		hooks    int
		matching bool
	}{{"none", 0, false}, {"10", 10, false}, {"100", 100, false}, {"100_one_matching", 100, true}} {
		b.Run(tc.name, func(b *testing.B) { benchPut(b, tc.hooks, tc.matching) })
	}
}

func benchPut(b *testing.B, n int, matching bool) {
	const keys = 10000
	limits := jobs.DefaultLimits()
	limits.JobsMax = 1 << 30 // the bench never completes a job
	q := jobs.NewModule(limits)
	hk := hooks.NewModule(hooks.DefaultLimits(), q)
	store := kv.NewModule(kv.New())
	store.Observe(hk)
	env := &module.Env{Batch: &storage.Batch{}}
	apply := func(m module.Module, c module.Command) {
		env.Index++
		env.NowNs += 1e6
		if a := m.Apply(env, c.Kind, c.Body); a.Outcome != module.OK {
			b.Fatalf("apply %d: %v %s", c.Kind, a.Outcome, a.Detail)
		}
		env.Batch.Ops = env.Batch.Ops[:0]
	}
	for i := range n {
		pattern := fmt.Sprintf("other/%d/", i)
		if matching && i == 0 {
			pattern = "key/"
		}
		apply(hk, hooks.Create(hooks.Def{Name: fmt.Sprintf("h%d", i), Pattern: pattern, Mode: hooks.Parallel, Parallel: 64,
			AttemptsMax: 3, TimeoutNs: 60e9, Handler: hooks.Handler{Kind: hooks.HandlerJob, JobType: "t"}}))
	}
	cmds := make([]module.Command, keys)
	for i := range cmds {
		cmds[i] = kv.Command(kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: fmt.Appendf(nil, "key/%08d", i), Value: make([]byte, 100)}}})
	}
	for _, c := range cmds {
		apply(store, c)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		apply(store, cmds[i%keys])
		i++
	}
}
