// Package sched is the pure time part of schedules: it parses cron expressions,
// fixed intervals and time zones, computes a schedule's next tick, and decides which
// ticks to fire after downtime. Every function is a pure function of its arguments:
// no clock, no files (zones come from an embedded, pinned database), so replicas
// computing a tick from the same replicated time agree.
package sched

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/assert"
)

// Kind says how a Spec ticks.
type Kind uint8

const (
	// KindCron ticks on the wall clock of the spec's zone.
	KindCron Kind = iota + 1
	// KindInterval ticks every fixed duration from an anchor, whatever the zone.
	KindInterval
)

// Bounds on what a spec may say.
const (
	specBytesMax = 512
	intervalMin  = time.Second
	intervalMax  = 366 * 24 * time.Hour
)

// ErrInvalidSpec wraps every reason a schedule expression is refused.
var ErrInvalidSpec = errors.New("invalid schedule")

// Spec is a parsed schedule: a cron expression in a zone, or a fixed interval.
// The zero value is not a valid Spec; build one with Parse.
type Spec struct {
	kind  Kind
	text  string
	zone  string
	loc   *time.Location
	cron  cron
	every time.Duration
	// anchorSec is the Unix second interval ticks count from (0 unless set with
	// WithAnchor): ticks fall at anchor + k*every.
	anchorSec int64
}

// Parse reads a schedule expression and a zone name ("" means UTC).
//
// Cron expressions have 5 fields (minute hour day-of-month month day-of-week) or
// 6 with the seconds field first ("*/10 * * * * *" is every ten seconds), numbers,
// ranges, lists, steps, names (JAN, MON) and the macros @yearly, @monthly,
// @weekly, @daily, @hourly. Intervals are "every <duration>" or "@every
// <duration>" in whole seconds ("every 90s", "every 1h30m"). zones may be nil.
func Parse(text, zone string, zones *Zones) (Spec, error) {
	if len(text) > specBytesMax {
		return Spec{}, fmt.Errorf("%w: expression of %d bytes: at most %d", ErrInvalidSpec, len(text), specBytesMax)
	}
	var loc *time.Location
	var err error
	if zones != nil {
		loc, err = zones.Load(zone)
	} else {
		loc, err = LoadZone(zone)
	}
	if err != nil {
		return Spec{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	s := Spec{text: text, zone: zone, loc: loc}
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return Spec{}, fmt.Errorf("%w: empty expression", ErrInvalidSpec)
	}
	if k, _, ok := strings.Cut(trimmed, "="); ok && !strings.ContainsAny(k, " \t") {
		return Spec{}, fmt.Errorf("%w: %q: give the time zone separately, not as %s= in the expression", ErrInvalidSpec, text, k)
	}
	lower := strings.ToLower(trimmed)
	for _, prefix := range []string{"every ", "@every "} {
		if rest, ok := strings.CutPrefix(lower, prefix); ok {
			s.kind = KindInterval
			if s.every, err = parseInterval(strings.TrimSpace(rest)); err != nil {
				return Spec{}, fmt.Errorf("%w: %q: %w", ErrInvalidSpec, text, err)
			}
			return s, nil
		}
	}
	s.kind = KindCron
	if s.cron, err = parseCron(trimmed); err != nil {
		return Spec{}, fmt.Errorf("%w: %q: %w", ErrInvalidSpec, text, err)
	}
	return s, nil
}

func parseInterval(text string) (time.Duration, error) {
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("interval: %w", err)
	}
	if d < intervalMin || d > intervalMax {
		return 0, fmt.Errorf("interval %s: want %s to %s", d, intervalMin, intervalMax)
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("interval %s: want whole seconds", d)
	}
	return d, nil
}

// Kind returns how the spec ticks.
func (s Spec) Kind() Kind { return s.kind }

// String returns the expression as given.
func (s Spec) String() string { return s.text }

// Zone returns the zone name as given ("" for UTC).
func (s Spec) Zone() string { return s.zone }

// Every returns an interval spec's period (0 for cron specs).
func (s Spec) Every() time.Duration { return s.every }

// WithAnchor returns an interval spec whose ticks fall at anchor + k*every (whole
// seconds; the fraction is dropped). The module anchors a schedule at its creation
// stamp so "every 90s" counts from then. Cron specs are returned unchanged.
func (s Spec) WithAnchor(anchor time.Time) Spec {
	if s.kind == KindInterval {
		s.anchorSec = anchor.Unix()
	}
	return s
}

// Next returns the first tick strictly after after, in the spec's zone.
//
// Cron ticks follow the zone's wall clock. On the day clocks go forward, a wall
// time that does not exist (02:30 in Europe/Berlin on 29 March 2026) fires at the
// moment of the change (03:00), once, as Vixie cron does; on the day clocks go back,
// a wall time that occurs twice (01:30 in America/New_York on 1 November 2026) fires
// at its first occurrence only.
func (s Spec) Next(after time.Time) time.Time {
	switch s.kind {
	case KindInterval:
		return s.nextInterval(after)
	case KindCron:
		return s.nextCron(after)
	}
	assert.That(false, "Next on a spec of kind %d (build specs with Parse)", s.kind)
	return time.Time{}
}

func (s Spec) nextInterval(after time.Time) time.Time {
	every := int64(s.every / time.Second)
	k := floorDiv(after.Unix()-s.anchorSec, every) + 1
	return time.Unix(s.anchorSec+k*every, 0).In(s.loc)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// repeatStepsMax bounds nextCron's retries: after skipping the second pass of a
// repeated hour, the first candidate is already later than after.
const repeatStepsMax = 4

func (s Spec) nextCron(after time.Time) time.Time {
	w := wallOf(after, s.loc).Add(time.Second)
	if end, ok := repeatEnd(after, s.loc); ok {
		w = end // wall times before end already passed, at their first occurrence
	}
	for range repeatStepsMax {
		cand := s.cron.next(w)
		if at := wallToInstant(cand, s.loc); at.After(after) {
			return at
		}
		w = cand.Add(time.Second)
	}
	assert.That(false, "no %q tick after %s in %d steps", s.text, after, repeatStepsMax)
	return time.Time{}
}

// repeatEnd reports whether t falls in the second pass of wall times repeated when
// clocks went back, and if so the first wall time after the repeat.
func repeatEnd(t time.Time, loc *time.Location) (time.Time, bool) {
	start, _ := t.In(loc).ZoneBounds()
	if start.IsZero() {
		return time.Time{}, false
	}
	_, offset := start.In(loc).Zone()
	_, prevOffset := start.Add(-time.Second).In(loc).Zone()
	back := int64(prevOffset - offset)
	if back <= 0 || t.Unix()-start.Unix() >= back {
		return time.Time{}, false
	}
	return time.Unix(start.Unix()+int64(prevOffset), 0).UTC(), true
}
