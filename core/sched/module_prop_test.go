package sched

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"pgregory.net/rapid"
)

// For random adds, pauses, resumes, leader fires, and fires applied again
// or late (a second leader, a retry), the jobs created under overlap allow
// are exactly one per due tick of an unpaused schedule: the ticks after its
// add (or resume) up to the latest tick a fire brought it to.
func TestFiresCreateOneJobPerDueTick(t *testing.T) {
	specs := []string{"every 1s", "every 2s", "every 3s", "*/2 * * * * *", "*/5 * * * * *"}
	rapid.Check(t, func(rt *rapid.T) {
		r := newRig(rt)
		type model struct {
			spec   Spec
			paused bool
			last   int64
		}
		models := map[string]*model{}
		want := map[string]int{}
		var sent []fireRef // every fire applied so far, to replay
		now := int64(0)
		for step := range rapid.IntRange(1, 60).Draw(rt, "steps") {
			now += rapid.Int64Range(0, 4*second).Draw(rt, "advance")
			names := slicesOf(models)
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op == 0 || len(names) == 0:
				name := fmt.Sprintf("s%d", step)
				text := rapid.SampledFrom(specs).Draw(rt, "spec")
				a := r.m.Apply(r.env(now), CmdAdd, Add(def(name, text, OverlapAllow, CatchUpRunAll, RunAllMax)).Body)
				if a.Outcome != module.OK {
					rt.Fatalf("add: %s", a.Detail)
				}
				spec, _ := Parse(text, "", nil)
				models[name] = &model{spec: spec.WithAnchor(time.Unix(0, now)), last: now}
			case op == 1:
				name := rapid.SampledFrom(names).Draw(rt, "pause")
				r.m.Apply(r.env(now), CmdPause, Pause(name).Body)
				models[name].paused = true
			case op == 2:
				name := rapid.SampledFrom(names).Draw(rt, "resume")
				r.m.Apply(r.env(now), CmdResume, Resume(name).Body)
				if m := models[name]; m.paused {
					m.paused, m.last = false, max(m.last, now)
				}
			case op == 3 && len(sent) > 0:
				f := rapid.SampledFrom(sent).Draw(rt, "replay")
				r.fire(now, f.name, f.tickNs)
			default:
				for _, c := range r.m.Due(module.Leader{NowNs: now}) {
					fs, _ := decodeFire(c.Body)
					sent = append(sent, fs...)
					r.m.Apply(r.env(now), c.Kind, c.Body)
					for _, f := range fs {
						m := models[f.name]
						if m.paused || f.tickNs <= m.last {
							continue
						}
						for tick := m.spec.Next(time.Unix(0, m.last)); !tick.After(time.Unix(0, f.tickNs)); tick = m.spec.Next(tick) {
							want[JobKey(f.name, tick.UnixNano())]++
						}
						m.last = f.tickNs
					}
				}
			}
		}
		got := map[string]int{}
		for st := jobs.Pending; st <= jobs.Cancelled; st++ {
			js, _ := r.q.Table().List(st, 0, 100_000)
			for _, j := range js {
				got[j.Key]++
			}
		}
		if len(sent) > 0 && len(want) == 0 {
			rt.Fatalf("fires were sent and no tick was due")
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			rt.Fatalf("jobs by key:\n got %v\nwant %v", got, want)
		}
		for _, name := range slicesOf(models) {
			if s, _ := r.get(name); s.Missed != 0 || s.Skipped != 0 {
				rt.Fatalf("%s: %d missed, %d skipped under run-all and allow", name, s.Missed, s.Skipped)
			}
		}
	})
}

func slicesOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// BenchmarkDueIdle is the leader's cost per tick with 1,000 schedules of
// which none is due.
func BenchmarkDueIdle(b *testing.B) {
	r := newRig(b)
	for i := range 1000 {
		r.apply(0, Add(def(fmt.Sprintf("s%04d", i), "0 0 * * *", OverlapAllow, CatchUpSkip, 0)), module.OK)
	}
	l := module.Leader{NowNs: 3600 * second}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(r.m.Due(l)) != 0 {
			b.Fatal("a schedule came due")
		}
	}
}
