package sched

import (
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/assert"
)

// fieldDef describes one cron field: its bounds and, for months and weekdays, the
// three-letter names that stand for numbers.
type fieldDef struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}

var (
	secondField = fieldDef{name: "second", min: 0, max: 59}
	minuteField = fieldDef{name: "minute", min: 0, max: 59}
	hourField   = fieldDef{name: "hour", min: 0, max: 23}
	domField    = fieldDef{name: "day-of-month", min: 1, max: 31}
	monthField  = fieldDef{name: "month", min: 1, max: 12, names: []string{
		"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	// Day-of-week 7 is Sunday as well as 0, as in Vixie cron.
	dowField = fieldDef{name: "day-of-week", min: 0, max: 7, names: []string{
		"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
)

// cronFieldBytesMax bounds one field's text; a field listing every minute
// ("0,1,...,59") is 170 bytes.
const cronFieldBytesMax = 200

// cronStepsMax bounds the search in cron.next: each step moves to the next month,
// day, hour, minute or second that can match, and a feasible expression matches
// within cronYearsMax years (29 February on a leap year), about 3,400 day steps.
const (
	cronStepsMax = 1 << 13
	cronYearsMax = 9
)

// cron is a parsed expression: bit v of a mask is set when value v matches.
type cron struct {
	second, minute, hour, dom, month, dow uint64
	// domStar and dowStar say the field began with '*' or '?'. As in Vixie cron, a
	// day matches both day fields when either is starred, and either of them when
	// neither is.
	domStar, dowStar bool
}

// macros name common expressions.
var macros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// parseCron reads 5 fields (minute hour day-of-month month day-of-week) or 6 with
// the seconds field first, as Quartz, Spring and robfig/cron's seconds option do.
func parseCron(text string) (cron, error) {
	if m, ok := macros[strings.ToLower(text)]; ok {
		text = m
	} else if strings.HasPrefix(text, "@") {
		return cron{}, fmt.Errorf("unknown macro %q (want @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>)", text)
	}
	parts := strings.Fields(text)
	switch len(parts) {
	case 5:
		parts = append([]string{"0"}, parts...)
	case 6:
	default:
		return cron{}, fmt.Errorf("%d fields: want 5 (minute hour day-of-month month day-of-week) or 6 (second first)", len(parts))
	}
	defs := [6]fieldDef{secondField, minuteField, hourField, domField, monthField, dowField}
	var masks [6]uint64
	for i, d := range defs {
		m, err := parseField(parts[i], d, i >= 3 && i != 4)
		if err != nil {
			return cron{}, err
		}
		masks[i] = m
	}
	c := cron{
		second: masks[0], minute: masks[1], hour: masks[2], dom: masks[3], month: masks[4], dow: masks[5],
		domStar: parts[3][0] == '*' || parts[3][0] == '?',
		dowStar: parts[5][0] == '*' || parts[5][0] == '?',
	}
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	if err := c.feasible(); err != nil {
		return cron{}, err
	}
	return c, nil
}

// parseField reads a comma-separated list of '*', 'n', 'a-b', each optionally
// followed by '/step'; 'a/step' runs from a to the field's maximum. '?' is '*' in
// the day fields.
func parseField(text string, d fieldDef, question bool) (uint64, error) {
	if len(text) > cronFieldBytesMax {
		return 0, fmt.Errorf("%s field of %d bytes: at most %d", d.name, len(text), cronFieldBytesMax)
	}
	var mask uint64
	for item := range strings.SplitSeq(text, ",") {
		m, err := parseItem(item, d, question)
		if err != nil {
			return 0, fmt.Errorf("%s field %q: %w", d.name, text, err)
		}
		mask |= m
	}
	return mask, nil
}

func parseItem(item string, d fieldDef, question bool) (uint64, error) {
	if item == "" {
		return 0, fmt.Errorf("empty list item")
	}
	base, stepText, hasStep := strings.Cut(item, "/")
	lo, hi := d.min, d.max
	switch {
	case base == "*" || (question && base == "?"):
	case base == "?":
		return 0, fmt.Errorf("'?' only in the day fields")
	default:
		a, b, isRange := strings.Cut(base, "-")
		var err error
		if lo, err = parseValue(a, d); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = parseValue(b, d); err != nil {
				return 0, err
			}
			if hi < lo {
				return 0, fmt.Errorf("range %d-%d runs backwards", lo, hi)
			}
		} else if hasStep {
			hi = d.max
		}
	}
	step := 1
	if hasStep {
		n, err := parseNumber(stepText)
		if err != nil || n < 1 || n > d.max-d.min+1 {
			return 0, fmt.Errorf("step %q: want a number from 1 to %d", stepText, d.max-d.min+1)
		}
		step = n
	}
	var m uint64
	for v := lo; v <= hi; v += step {
		m |= 1 << v
	}
	return m, nil
}

// parseValue reads a number within the field's bounds or one of its names.
func parseValue(s string, d fieldDef) (int, error) {
	for i, name := range d.names {
		if strings.EqualFold(s, name) {
			return d.min + i, nil
		}
	}
	n, err := parseNumber(s)
	if err != nil {
		return 0, err
	}
	if n < d.min || n > d.max {
		return 0, fmt.Errorf("%d out of range %d-%d", n, d.min, d.max)
	}
	return n, nil
}

// parseNumber reads 1 to 3 decimal digits, so no input can overflow.
func parseNumber(s string) (int, error) {
	if s == "" || len(s) > 3 {
		return 0, fmt.Errorf("%q is not a number of 1 to 3 digits", s)
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		n = n*10 + int(r-'0')
	}
	return n, nil
}

// daysInMonthMax is the longest each month gets (February in a leap year).
var daysInMonthMax = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// feasible refuses expressions that can never match, such as 30 February: the
// search for their next tick would have no end.
func (c cron) feasible() error {
	if c.domStar || !c.dowStar {
		return nil // every day or every matching weekday qualifies
	}
	for m := 1; m <= 12; m++ {
		if c.month&(1<<m) == 0 {
			continue
		}
		for d := 1; d <= daysInMonthMax[m]; d++ {
			if c.dom&(1<<d) != 0 {
				return nil
			}
		}
	}
	return fmt.Errorf("day-of-month and month never meet (such as 30 February): the expression never fires")
}

func (c cron) dayMatches(t time.Time) bool {
	d := c.dom&(1<<t.Day()) != 0
	w := c.dow&(1<<t.Weekday()) != 0
	if c.domStar || c.dowStar {
		return d && w
	}
	return d || w
}

// nextBit returns the lowest set bit of mask at or above from, or 64 if none.
func nextBit(mask uint64, from int) int {
	return bits.TrailingZeros64(mask >> from << from)
}

// next returns the first wall time at or after w (a UTC time.Time whose fields
// are the wall clock) that matches.
func (c cron) next(w time.Time) time.Time {
	t, yearMax := w, w.Year()+cronYearsMax
	for range cronStepsMax {
		assert.That(t.Year() <= yearMax, "cron search passed %d years from %s", cronYearsMax, w.Format(time.DateTime))
		y, mo, d := t.Date()
		h, mi, s := t.Clock()
		switch {
		case c.month&(1<<mo) == 0:
			t = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
		case c.hour&(1<<h) == 0:
			t = time.Date(y, mo, d, min(nextBit(c.hour, h), 24), 0, 0, 0, time.UTC) // 24: the next day
		case c.minute&(1<<mi) == 0:
			t = time.Date(y, mo, d, h, min(nextBit(c.minute, mi), 60), 0, 0, time.UTC) // 60: the next hour
		case c.second&(1<<s) == 0:
			t = time.Date(y, mo, d, h, mi, min(nextBit(c.second, s), 60), 0, time.UTC) // 60: the next minute
		default:
			return t
		}
	}
	assert.That(false, "cron search took over %d steps from %s", cronStepsMax, w.Format(time.DateTime))
	return time.Time{}
}
