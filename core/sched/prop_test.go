package sched

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// genField draws a field as text and the set of values it stands for, built
// independently of the parser.
func genField(t *rapid.T, name string, lo, hi int) (string, map[int]bool) {
	set := map[int]bool{}
	switch rapid.IntRange(0, 3).Draw(t, name+"Form") {
	case 0:
		for v := lo; v <= hi; v++ {
			set[v] = true
		}
		return "*", set
	case 1:
		step := rapid.IntRange(1, hi-lo+1).Draw(t, name+"Step")
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
		return fmt.Sprintf("*/%d", step), set
	case 2:
		a := rapid.IntRange(lo, hi).Draw(t, name+"A")
		b := rapid.IntRange(a, hi).Draw(t, name+"B")
		step := rapid.IntRange(1, 5).Draw(t, name+"RangeStep")
		for v := a; v <= b; v += step {
			set[v] = true
		}
		return fmt.Sprintf("%d-%d/%d", a, b, step), set
	default:
		vals := rapid.SliceOfNDistinct(rapid.IntRange(lo, hi), 1, 4, rapid.ID[int]).Draw(t, name+"List")
		parts := make([]string, len(vals))
		for i, v := range vals {
			set[v] = true
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, ","), set
	}
}

// TestNextMatchesBruteForce compares Next with a minute-by-minute scan of a
// two-day window in UTC for random 5-field specs whose days are not restricted
// (so a match exists within the window), and checks Next is strictly increasing.
func TestNextMatchesBruteForce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		minText, minutes := genField(t, "minute", 0, 59)
		hourText, hours := genField(t, "hour", 0, 23)
		dowText, dows := "*", map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 6: true}
		if rapid.Bool().Draw(t, "restrictWeekday") {
			dowText, dows = genField(t, "weekday", 0, 6)
		}
		expr := fmt.Sprintf("%s %s * * %s", minText, hourText, dowText)
		s, err := Parse(expr, "", nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		start := time.Unix(rapid.Int64Range(1_700_000_000, 1_900_000_000).Draw(t, "start"), 0).UTC()
		var want time.Time
		for m := start.Truncate(time.Minute).Add(time.Minute); m.Before(start.Add(8 * 24 * time.Hour)); m = m.Add(time.Minute) {
			if minutes[m.Minute()] && hours[m.Hour()] && dows[int(m.Weekday())] {
				want = m
				break
			}
		}
		got := s.Next(start)
		if !got.Equal(want) {
			t.Fatalf("%q Next(%s): got %s, want %s", expr, start, got, want)
		}
		if again := s.Next(got); !again.After(got) {
			t.Fatalf("%q Next(Next) = %s, not after %s", expr, again, got)
		}
	})
}

// TestNextIsStrictlyIncreasing walks random specs in zones with DST changes.
func TestNextIsStrictlyIncreasing(t *testing.T) {
	zones := []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"}
	rapid.Check(t, func(t *rapid.T) {
		secText, _ := genField(t, "second", 0, 59)
		minText, _ := genField(t, "minute", 0, 59)
		hourText, _ := genField(t, "hour", 0, 23)
		expr := fmt.Sprintf("%s %s %s * * *", secText, minText, hourText)
		zone := rapid.SampledFrom(zones).Draw(t, "zone")
		s, err := Parse(expr, zone, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		at := time.Unix(rapid.Int64Range(1_700_000_000, 1_900_000_000).Draw(t, "start"), 0)
		for range 200 {
			next := s.Next(at)
			if !next.After(at) {
				t.Fatalf("%q in %s: Next(%s) = %s", expr, zone, at, next)
			}
			if mid := at.Add(next.Sub(at) / 2); mid.After(at) && !s.Next(mid).Equal(next) {
				t.Fatalf("%q in %s: Next(%s) = %s but Next(%s) = %s", expr, zone, at, next, mid, s.Next(mid))
			}
			at = next
		}
	})
}
