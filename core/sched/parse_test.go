package sched

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseAccepts(t *testing.T) {
	after := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		expr, zone string
		want       string // first tick after 2026-01-01T00:00:00Z, in UTC
	}{
		{"*/5 * * * *", "", "2026-01-01T00:05:00Z"},
		{"*/5 * * * *", "Europe/Berlin", "2026-01-01T00:05:00Z"},
		{"30 2 * * *", "Europe/Berlin", "2026-01-01T01:30:00Z"},
		// Six fields: seconds first.
		{"*/10 * * * * *", "", "2026-01-01T00:00:10Z"},
		{"30 0 0 * * *", "", "2026-01-01T00:00:30Z"},
		{"0 0 12 * * MON-FRI", "", "2026-01-01T12:00:00Z"}, // a Thursday
		{"0 9 * JAN-MAR sun", "", "2026-01-04T09:00:00Z"},
		{"0 0 * * 7", "", "2026-01-04T00:00:00Z"},  // 7 is Sunday too
		{"0 0 13 * 5", "", "2026-01-02T00:00:00Z"}, // day 13 or a Friday
		{"0 0 ? * 5", "", "2026-01-02T00:00:00Z"},
		{"0 0 29 2 *", "", "2028-02-29T00:00:00Z"},
		{"5/20 * * * *", "", "2026-01-01T00:05:00Z"},
		{"1-3,58 23 31 12 *", "", "2026-12-31T23:01:00Z"},
		{"  0   *  * * *  ", "", "2026-01-01T01:00:00Z"},
		{"@hourly", "", "2026-01-01T01:00:00Z"},
		{"@DAILY", "Asia/Tokyo", "2026-01-01T15:00:00Z"},
		{"@yearly", "", "2027-01-01T00:00:00Z"},
		{"every 90s", "", "2026-01-01T00:01:30Z"},
		{"@every 1h30m", "America/New_York", "2026-01-01T01:30:00Z"},
		{"0 0 * * *", "UTC", "2026-01-02T00:00:00Z"},
	}
	for _, c := range cases {
		s, err := Parse(c.expr, c.zone, nil)
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", c.expr, c.zone, err)
			continue
		}
		if got := s.Next(after).UTC().Format(time.RFC3339); got != c.want {
			t.Errorf("Parse(%q, %q).Next: got %s, want %s", c.expr, c.zone, got, c.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct{ expr, zone, want string }{
		{"", "", "empty"},
		{"   ", "", "empty"},
		{"TZ=0", "", "time zone separately"},
		{"CRON_TZ=", "", "time zone separately"},
		{"CRON_TZ=Europe/Berlin 0 * * * *", "", "time zone separately"},
		{"TZ=UTC * * * * *", "", "time zone separately"},
		{"* * * *", "", "4 fields"},
		{"* * * * * * *", "", "7 fields"},
		{"0 0 1 1 * 2030", "", "day-of-week"}, // no year field: the sixth field is the weekday
		{"60 * * * *", "", "out of range"},
		{"* 24 * * *", "", "out of range"},
		{"* * 0 * *", "", "out of range"},
		{"* * 32 * *", "", "out of range"},
		{"* * * 13 *", "", "out of range"},
		{"* * * * 8", "", "out of range"},
		{"99999999999999999999 * * * *", "", "1 to 3 digits"},
		{"* * * * * 9223372036854775808", "", "1 to 3 digits"},
		{"*/0 * * * *", "", "step"},
		{"*/61 * * * *", "", "step"},
		{"*/ * * * *", "", "step"},
		{"*/-1 * * * *", "", "step"},
		{"1/2/3 * * * *", "", "step"},
		{"5-1 * * * *", "", "backwards"},
		{"1-2-3 * * * *", "", "not a number"},
		{"-5 * * * *", "", "not a number"},
		{"1,,2 * * * *", "", "empty list item"},
		{", * * * *", "", "empty list item"},
		{"? * * * *", "", "only in the day fields"},
		{"0 0 L * *", "", "not a number"},
		{"0 0 * * 5#3", "", "not a number"},
		{"0 0 30 2 *", "", "never"},
		{"0 0 31 4,6,9,11 *", "", "never"},
		{"@reboot", "", "unknown macro"},
		{"@every", "", "unknown macro"},
		{"every 0s", "", "interval"},
		{"every 1500ms", "", "whole seconds"},
		{"every -5s", "", "interval"},
		{"every 9999999h", "", "interval"},
		{"every soon", "", "interval"},
		{"* * * * *", "Mars/Olympus", "unknown time zone"},
		{"* * * * *", "Local", "host"},
		{"* * * * *", "../etc/passwd", "unknown time zone"},
		{"* * * * *", "/etc/localtime", "unknown time zone"},
		{"* * * * *", "europe/berlin", "unknown time zone"},
		{"* * * * *", strings.Repeat("A", 100), "unknown time zone"},
		{strings.Repeat("1,", 300) + "1 * * * *", "", "bytes"},
	}
	for _, c := range cases {
		s, err := Parse(c.expr, c.zone, nil)
		if err == nil {
			t.Errorf("Parse(%q, %q) = %v, want an error containing %q", c.expr, c.zone, s, c.want)
			continue
		}
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q, %q): got %v, want ErrInvalidSpec containing %q", c.expr, c.zone, err, c.want)
		}
	}
}

// FuzzParse checks that no input panics and that accepted specs tick forward.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"TZ=0", "CRON_TZ=", "*/5 * * * *", "0 0 29 2 *", "every 90s", "1-5/2 * ? * MON", "@every 1s"} {
		f.Add(s)
	}
	after := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr, "Europe/Berlin", nil)
		if err != nil {
			return
		}
		if n := s.Next(after); !n.After(after) {
			t.Fatalf("%q: Next(%s) = %s, not after", expr, after, n)
		}
	})
}
