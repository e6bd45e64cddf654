package sched

import (
	"testing"
	"time"
)

func mustParse(t *testing.T, expr, zone string) Spec {
	t.Helper()
	s, err := Parse(expr, zone, nil)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, zone, err)
	}
	return s
}

func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ticks returns the ticks in (from, to].
func ticks(s Spec, from, to time.Time) []time.Time {
	var out []time.Time
	for t := s.Next(from); !t.After(to); t = s.Next(t) {
		out = append(out, t)
	}
	return out
}

func TestDailyJobsOnDSTDays(t *testing.T) {
	cases := []struct {
		name, expr, zone, from, to string
		want                       []string // local times with offsets
	}{
		{"berlin spring forward: 02:30 runs at the change, 03:00", "30 2 * * *", "Europe/Berlin",
			"2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z",
			[]string{"2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"berlin fall back: 02:30 runs once, at its first occurrence", "30 2 * * *", "Europe/Berlin",
			"2026-10-23T12:00:00Z", "2026-10-26T12:00:00Z",
			[]string{"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"new york spring forward: 02:30 runs at 03:00", "30 2 * * *", "America/New_York",
			"2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"new york fall back: 01:30 runs once", "30 1 * * *", "America/New_York",
			"2026-10-31T00:00:00Z", "2026-11-02T12:00:00Z",
			[]string{"2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"berlin 6 fields: 02:30:15 on spring forward runs at 03:00:00", "15 30 2 * * *", "Europe/Berlin",
			"2026-03-29T00:00:00Z", "2026-03-29T12:00:00Z",
			[]string{"2026-03-29T03:00:00+02:00"}},
		{"berlin outside DST changes is untouched", "0 0 * * *", "Europe/Berlin",
			"2026-06-30T12:00:00Z", "2026-07-01T12:00:00Z",
			[]string{"2026-07-01T00:00:00+02:00"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.expr, c.zone)
			got := ticks(s, utc(t, c.from), utc(t, c.to))
			if len(got) != len(c.want) {
				t.Fatalf("got %d ticks %v, want %v", len(got), got, c.want)
			}
			for i, g := range got {
				if g.Format(time.RFC3339) != c.want[i] {
					t.Errorf("tick %d: got %s, want %s", i, g.Format(time.RFC3339), c.want[i])
				}
			}
		})
	}
}

// TestFrequentSpecsAcrossDSTChanges checks hourly, every-minute and every-second
// specs over each change day: ticks strictly increase, no wall time fires twice,
// every wall time that exists fires, and the only gap longer than the period is the
// hour clocks go back.
func TestFrequentSpecsAcrossDSTChanges(t *testing.T) {
	days := []struct {
		zone, day string
		back      bool
	}{
		{"Europe/Berlin", "2026-03-29", false},
		{"Europe/Berlin", "2026-10-25", true},
		{"America/New_York", "2026-03-08", false},
		{"America/New_York", "2026-11-01", true},
	}
	specs := []struct {
		expr   string
		period time.Duration
	}{
		{"0 * * * *", time.Hour},
		{"* * * * *", time.Minute},
		{"*/15 * * * * *", 15 * time.Second},
	}
	for _, d := range days {
		for _, sp := range specs {
			t.Run(d.zone+" "+d.day+" "+sp.expr, func(t *testing.T) {
				s := mustParse(t, sp.expr, d.zone)
				loc, _ := LoadZone(d.zone)
				day, _ := time.ParseInLocation(time.DateOnly, d.day, loc)
				got := ticks(s, day.Add(-time.Nanosecond), day.AddDate(0, 0, 1).Add(-time.Nanosecond))
				walls := map[string]bool{}
				longGaps := 0
				for i, g := range got {
					w := g.In(loc).Format(time.DateTime)
					if walls[w] {
						t.Fatalf("wall time %s fired twice", w)
					}
					walls[w] = true
					if i == 0 {
						continue
					}
					switch gap := g.Sub(got[i-1]); {
					case gap <= 0:
						t.Fatalf("tick %s not after %s", g, got[i-1])
					case gap == sp.period:
					case d.back && gap == sp.period+time.Hour:
						longGaps++
					case !d.back && gap < sp.period:
						// the first tick after clocks went forward
					default:
						t.Fatalf("gap of %s between %s and %s", gap, got[i-1], g)
					}
				}
				if d.back && longGaps != 1 {
					t.Errorf("got %d gaps of a period plus an hour, want exactly 1 (the repeated hour)", longGaps)
				}
				// Every wall time of the day that exists fires.
				for w := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC); w.Day() == day.Day(); w = w.Add(sp.period) {
					at := wallToInstant(w, loc)
					if wallOf(at, loc).Equal(w) && !walls[w.Format(time.DateTime)] {
						t.Fatalf("wall time %s exists but never fired", w.Format(time.DateTime))
					}
				}
			})
		}
	}
}

// TestNextFromTheRepeatedHour starts inside the second pass of a repeated hour:
// its wall times fired during the first pass, so the next tick is after it.
func TestNextFromTheRepeatedHour(t *testing.T) {
	after := utc(t, "2026-11-01T06:15:00Z") // 01:15 EST, the second 01:15 of the day
	cases := []struct{ expr, want string }{
		{"30 1 * * *", "2026-11-02T01:30:00-05:00"},
		{"* * * * *", "2026-11-01T02:00:00-05:00"},
		{"0 * * * *", "2026-11-01T02:00:00-05:00"},
		{"every 60s", "2026-11-01T01:16:00-05:00"}, // intervals are absolute
	}
	for _, c := range cases {
		got := mustParse(t, c.expr, "America/New_York").Next(after).Format(time.RFC3339)
		if got != c.want {
			t.Errorf("%q: got %s, want %s", c.expr, got, c.want)
		}
	}
}

func TestWallToInstant(t *testing.T) {
	cases := []struct{ zone, wall, want string }{
		{"Europe/Berlin", "2026-03-29T01:59:59Z", "2026-03-29T00:59:59Z"},
		{"Europe/Berlin", "2026-03-29T02:00:00Z", "2026-03-29T01:00:00Z"}, // gap: the change
		{"Europe/Berlin", "2026-03-29T02:59:59Z", "2026-03-29T01:00:00Z"},
		{"Europe/Berlin", "2026-03-29T03:00:00Z", "2026-03-29T01:00:00Z"},
		{"Europe/Berlin", "2026-10-25T02:30:00Z", "2026-10-25T00:30:00Z"}, // first occurrence
		{"Europe/Berlin", "2026-10-25T03:00:00Z", "2026-10-25T02:00:00Z"},
		{"Australia/Lord_Howe", "2026-10-04T02:15:00Z", "2026-10-03T15:30:00Z"}, // a 30-minute change
		{"Asia/Kolkata", "2026-01-01T00:00:00Z", "2025-12-31T18:30:00Z"},
		{"Pacific/Kiritimati", "2026-01-01T00:00:00Z", "2025-12-31T10:00:00Z"},
	}
	for _, c := range cases {
		loc, err := LoadZone(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		got := wallToInstant(utc(t, c.wall), loc).UTC().Format(time.RFC3339)
		if got != c.want {
			t.Errorf("%s %s: got %s, want %s", c.zone, c.wall, got, c.want)
		}
	}
}

// Go splits a rule-described zone period at every year's end; a wall time
// in the last day of a year once found no instant and broke the replica
// (found by the rapid test: Berlin, 2024-12-31 12:00).
func TestWallTimesAroundYearEnds(t *testing.T) {
	var z Zones
	for _, name := range []string{"Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Tokyo"} {
		loc, err := z.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for year := 2020; year <= 2040; year++ {
			for _, wall := range []time.Time{
				time.Date(year, 12, 30, 23, 30, 0, 0, time.UTC),
				time.Date(year, 12, 31, 0, 0, 0, 0, time.UTC),
				time.Date(year, 12, 31, 12, 0, 0, 0, time.UTC),
				time.Date(year, 12, 31, 23, 59, 59, 0, time.UTC),
				time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(year+1, 1, 1, 1, 30, 0, 0, time.UTC),
			} {
				got := wallToInstant(wall, loc)
				if w := wallOf(got, loc); !w.Equal(wall) {
					t.Fatalf("%s: wall time %s maps to %s, whose wall time is %s", name, wall.Format(time.DateTime), got, w.Format(time.DateTime))
				}
			}
		}
	}
}
