package sched

import (
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	hourly := "0 * * * *"
	last := "2026-05-01T10:00:00Z"
	cases := []struct {
		name, expr string
		last, now  string
		policy     CatchUp
		bound      int
		fire       []string
		missed     uint64
	}{
		{"nothing due yet", hourly, last, "2026-05-01T10:59:59Z", CatchUpSkip, 0, nil, 0},
		{"one due: every policy fires it", hourly, last, "2026-05-01T11:00:00Z", CatchUpSkip, 0,
			[]string{"2026-05-01T11:00:00Z"}, 0},
		{"one due, run once", hourly, last, "2026-05-01T11:30:00Z", CatchUpRunOnce, 0,
			[]string{"2026-05-01T11:00:00Z"}, 0},
		{"skip: latest only", hourly, last, "2026-05-01T15:30:00Z", CatchUpSkip, 0,
			[]string{"2026-05-01T15:00:00Z"}, 4},
		{"run once: earliest and latest", hourly, last, "2026-05-01T15:30:00Z", CatchUpRunOnce, 0,
			[]string{"2026-05-01T11:00:00Z", "2026-05-01T15:00:00Z"}, 3},
		{"run all within the bound", hourly, last, "2026-05-01T13:00:00Z", CatchUpRunAll, 10,
			[]string{"2026-05-01T11:00:00Z", "2026-05-01T12:00:00Z", "2026-05-01T13:00:00Z"}, 0},
		{"run all past the bound keeps the latest", hourly, last, "2026-05-02T10:00:00Z", CatchUpRunAll, 2,
			[]string{"2026-05-02T09:00:00Z", "2026-05-02T10:00:00Z"}, 22},
		{"interval: a year of seconds counted by arithmetic", "every 1s", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", CatchUpSkip, 0,
			[]string{"2026-01-01T00:00:00Z"}, 365*86400 - 1},
		{"sparse ticks long ago", "0 0 1 1 *", "2020-06-01T00:00:00Z", "2026-05-01T00:00:00Z", CatchUpRunAll, 3,
			[]string{"2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.expr, "")
			got, err := Due(s, utc(t, c.last), utc(t, c.now), c.policy, c.bound)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Fire) != len(c.fire) {
				t.Fatalf("got fire %v, want %v", got.Fire, c.fire)
			}
			for i, f := range got.Fire {
				if f.UTC().Format(time.RFC3339) != c.fire[i] {
					t.Errorf("fire %d: got %s, want %s", i, f.UTC().Format(time.RFC3339), c.fire[i])
				}
			}
			if got.Missed != c.missed || got.MissedCapped {
				t.Errorf("got missed %d (capped %v), want %d", got.Missed, got.MissedCapped, c.missed)
			}
		})
	}
}

func TestDueCapsCountingMissedCronTicks(t *testing.T) {
	s := mustParse(t, "* * * * * *", "")
	got, err := Due(s, utc(t, "2026-01-01T00:00:00Z"), utc(t, "2026-02-01T00:00:00Z"), CatchUpSkip, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.MissedCapped || got.Missed != dueCountMax-1 || len(got.Fire) != 1 || !got.Fire[0].Equal(utc(t, "2026-02-01T00:00:00Z")) {
		t.Fatalf("got %+v, want the latest tick fired and missed capped at %d", got, dueCountMax-1)
	}
}

func TestDueRefusesBadPolicies(t *testing.T) {
	s := mustParse(t, "* * * * *", "")
	at := utc(t, "2026-01-01T00:00:00Z")
	for _, c := range []struct {
		policy CatchUp
		bound  int
	}{{0, 0}, {9, 0}, {CatchUpRunAll, 0}, {CatchUpRunAll, RunAllMax + 1}} {
		if _, err := Due(s, at, at.Add(time.Hour), c.policy, c.bound); err == nil {
			t.Errorf("Due with policy %s bound %d: got no error", c.policy, c.bound)
		}
	}
}
