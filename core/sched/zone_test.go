package sched

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestZoneDatabaseIsPinned names the embedded database: a change to it changes when
// ticks fire and must be deliberate (update the digest and DESIGN.md together).
func TestZoneDatabaseIsPinned(t *testing.T) {
	const want = "8f55634d05f8bca1f7bc7c69c5933428c69357e0bdf565e5ba224e3f88ff12e8" // tzdata 2025c, Go 1.26.8
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(zoneinfoZip))); got != want {
		t.Fatalf("zoneinfo.zip sha256 %s, want %s", got, want)
	}
	if n := ZoneCount(); n < 500 {
		t.Fatalf("got %d zones, want the whole database", n)
	}
}

func TestZonesCacheGivesTheSameZone(t *testing.T) {
	var z Zones
	a, err := z.Load("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := z.Load("Europe/Berlin")
	fresh, _ := LoadZone("Europe/Berlin")
	if a != b || zoneFingerprint(a) != zoneFingerprint(fresh) {
		t.Fatalf("cached zone differs from a fresh load")
	}
	if _, err := z.Load("Nowhere/City"); err == nil {
		t.Fatal("Load(Nowhere/City): got no error")
	}
}

// zoneFingerprint walks every zone period from 1900 to 2100.
func zoneFingerprint(loc *time.Location) string {
	h := sha256.New()
	at := time.Date(1900, 1, 1, 0, 0, 0, 0, loc)
	for range 2000 {
		name, offset := at.Zone()
		_, end := at.ZoneBounds()
		fmt.Fprintf(h, "%d %s %d\n", at.Unix(), name, offset)
		if end.IsZero() || end.Year() > 2100 {
			break
		}
		at = end.In(loc)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// schedFingerprint is what this package computes from zones: their periods and a
// few ticks across DST changes.
func schedFingerprint() string {
	var b strings.Builder
	for _, name := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Tokyo"} {
		loc, err := LoadZone(name)
		if err != nil {
			return "error: " + err.Error()
		}
		s, _ := Parse("30 2 * * *", name, nil)
		fmt.Fprintf(&b, "%s %s %s\n", name, zoneFingerprint(loc),
			s.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)).Format(time.RFC3339))
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(b.String())))
}

// TestZoneChild runs in a child process started by TestZonesIgnoreTheHost.
func TestZoneChild(t *testing.T) {
	if os.Getenv("SCHED_ZONE_CHILD") == "" {
		t.Skip("runs only as a child of TestZonesIgnoreTheHost")
	}
	host := "error"
	if loc, err := time.LoadLocation("Europe/Berlin"); err == nil {
		host = zoneFingerprint(loc)
	}
	fmt.Printf("SCHED=%s\nHOST=%s\n", schedFingerprint(), host)
}

// TestZonesIgnoreTheHost runs this package in child processes whose host time
// zone data is garbage, replaced, or absent: zones load the same as here, while
// the standard library's LoadLocation in the same child sees the change.
func TestZonesIgnoreTheHost(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.zip")
	if err := os.WriteFile(garbage, []byte("not a zip at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A ZONEINFO directory whose Europe/Berlin holds Tokyo's rules.
	fake := filepath.Join(dir, "fake")
	if err := os.MkdirAll(filepath.Join(fake, "Europe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "Europe", "Berlin"), []byte(zoneData["Asia/Tokyo"]), 0o644); err != nil {
		t.Fatal(err)
	}
	tokyo, _ := LoadZone("Asia/Tokyo")
	want := schedFingerprint()
	self := os.Args[0]
	run := []string{"-test.run", "^TestZoneChild$", "-test.count", "1"}
	cases := []struct {
		name     string
		cmd      *exec.Cmd
		wantHost string // "" for any
	}{
		{"ZONEINFO is garbage", exec.Command(self, run...), ""},
		{"ZONEINFO holds other rules", exec.Command(self, run...), zoneFingerprint(tokyo)},
		{"no system zoneinfo", exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs none /usr/share/zoneinfo && exec "$0" "$@"`, self}, run...)...), "error"},
	}
	cases[0].cmd.Env = append(os.Environ(), "SCHED_ZONE_CHILD=1", "ZONEINFO="+garbage)
	cases[1].cmd.Env = append(os.Environ(), "SCHED_ZONE_CHILD=1", "ZONEINFO="+fake)
	cases[2].cmd.Env = append(os.Environ(), "SCHED_ZONE_CHILD=1", "ZONEINFO=", "GOROOT="+dir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.cmd.CombinedOutput()
			if err != nil {
				if c.cmd.Args[0] == "unshare" {
					t.Skipf("cannot hide the system zoneinfo here (needs mount namespaces): %v: %s", err, out)
				}
				t.Fatalf("child: %v: %s", err, out)
			}
			if !strings.Contains(string(out), "SCHED="+want+"\n") {
				t.Errorf("child computed other zones: %s, want SCHED=%s", out, want)
			}
			if c.wantHost != "" && !strings.Contains(string(out), "HOST="+c.wantHost+"\n") {
				t.Errorf("the child's host LoadLocation did not see the change (the test proves nothing): %s", out)
			}
		})
	}
}
