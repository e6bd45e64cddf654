package sched

import (
	"archive/zip"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/assert"
)

// zoneinfoZip is a pinned copy of the IANA time zone database (release 2025c) in
// the form Go ships it ($GOROOT/lib/time/zoneinfo.zip of Go 1.26.8: uncompressed
// zip entries of TZif files). Zones come only from here, never from the host's
// /usr/share/zoneinfo or $ZONEINFO, so every replica reads the same rules whatever
// its machine holds. Updating it changes when ticks fire: ship it like any change
// to replicated behaviour (TestZoneDatabaseIsPinned names the digest).
//
//go:embed zoneinfo.zip
var zoneinfoZip string

// zoneNameBytesMax bounds a zone name; the longest IANA name is 32 bytes.
const zoneNameBytesMax = 64

// zoneData maps a zone name to its TZif bytes (slices of zoneinfoZip). Built once at
// package initialisation and never written afterwards, so readers on any goroutine
// see the same immutable table.
var zoneData = indexZones(zoneinfoZip)

// ErrUnknownZone is returned for a zone name the embedded database does not hold.
var ErrUnknownZone = errors.New("unknown time zone")

func indexZones(z string) map[string]string {
	r, err := zip.NewReader(strings.NewReader(z), int64(len(z)))
	assert.That(err == nil, "embedded zoneinfo.zip unreadable: %v", err)
	out := make(map[string]string, len(r.File))
	for _, f := range r.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		assert.That(f.Method == zip.Store, "embedded zone %q is compressed (method %d)", f.Name, f.Method)
		off, err := f.DataOffset()
		assert.That(err == nil && off >= 0 && off+int64(f.UncompressedSize64) <= int64(len(z)),
			"embedded zone %q out of bounds: %v", f.Name, err)
		out[f.Name] = z[off : off+int64(f.UncompressedSize64)]
	}
	assert.That(len(out) > 300, "embedded zoneinfo.zip holds only %d zones", len(out))
	return out
}

// ZoneCount returns how many zones the embedded database holds.
func ZoneCount() int { return len(zoneData) }

// LoadZone builds the named zone from the embedded database alone. "" and "UTC"
// are UTC; "Local" is refused because it means the host's zone. The result is a
// pure function of the name: the same on every machine.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("time zone %q: the host's zone differs between replicas; name an IANA zone such as Europe/Berlin", name)
	}
	if len(name) > zoneNameBytesMax {
		return nil, fmt.Errorf("time zone name of %d bytes: at most %d: %w", len(name), zoneNameBytesMax, ErrUnknownZone)
	}
	data, ok := zoneData[name]
	if !ok {
		return nil, fmt.Errorf("time zone %q: %w", name, ErrUnknownZone)
	}
	loc, err := time.LoadLocationFromTZData(name, []byte(data))
	if err != nil {
		return nil, fmt.Errorf("time zone %q: embedded data: %w", name, err)
	}
	return loc, nil
}

// Zones resolves zone names through LoadZone and keeps what it built. It is not
// safe for concurrent use: one owner (a module instance) holds one. The cache is
// bounded by the database itself (ZoneCount entries at most), and a cached zone is
// identical to a freshly loaded one, so the cache never changes a result.
type Zones struct {
	loaded map[string]*time.Location
}

// Load returns the named zone, building it on first use.
func (z *Zones) Load(name string) (*time.Location, error) {
	if loc, ok := z.loaded[name]; ok {
		return loc, nil
	}
	loc, err := LoadZone(name)
	if err != nil {
		return nil, err
	}
	if z.loaded == nil {
		z.loaded = make(map[string]*time.Location)
	}
	z.loaded[name] = loc
	return loc, nil
}

// wallToInstant maps a wall-clock time (its fields in a UTC time.Time) in loc to
// an instant. A wall time that occurs twice (clocks set back) maps to its first
// occurrence; one that never occurs (clocks set forward) maps to the first instant
// after the gap, the moment of the change. time.Date leaves both cases unspecified,
// so this does not rely on it; nor on ZoneBounds, which for periods a zone's rule
// string describes reports bounds at every year's end that do not always contain
// the instant asked about (Berlin, 2020-12-31 12:00 found no instant that way).
//
// Offsets are within ±26 hours and zones change at most once in the 54 hours
// around a wall time, so the offsets in force 27 hours before and after it are
// the only candidates.
func wallToInstant(wall time.Time, loc *time.Location) time.Time {
	u := wall.Unix()
	if loc == time.UTC {
		return time.Unix(u, 0).In(loc)
	}
	const windowSec = 27 * 3600
	before, after := offsetAt(u-windowSec, loc), offsetAt(u+windowSec, loc)
	first, second := u-int64(before), u-int64(after)
	if first > second {
		first, second = second, first
	}
	for _, t := range [2]int64{first, second} { // earliest first: a repeated wall time maps to its first
		if u-int64(offsetAt(t, loc)) == t {
			return time.Unix(t, 0).In(loc)
		}
	}
	// In the gap the change opened: the change itself lies between the two
	// candidates (the offset at first is the old one, at second the new one).
	lo, hi := first, second
	assert.That(offsetAt(lo, loc) != offsetAt(hi, loc), "wall time %s has no instant in %s", wall.Format(time.DateTime), loc)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if offsetAt(mid, loc) == offsetAt(lo, loc) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(hi, 0).In(loc)
}

func offsetAt(unix int64, loc *time.Location) int {
	_, off := time.Unix(unix, 0).In(loc).Zone()
	return off
}

// wallOf returns the wall-clock fields of t in loc as a UTC time.Time, whole seconds.
func wallOf(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}
