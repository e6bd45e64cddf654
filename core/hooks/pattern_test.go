package hooks

import (
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestPatternMatches(t *testing.T) {
	cases := []struct {
		pattern, key string
		want         bool
	}{
		// Without '*': a prefix.
		{"", "anything", true},
		{"svc/", "svc/a", true},
		{"svc/", "svc/", true},
		{"svc/", "svc", false},
		{"svc/", "svcx/a", false},
		{"svc", "svcx/a", true},
		// "*": exactly one segment.
		{"svc/*", "svc/a", true},
		{"svc/*", "svc/", true}, // one empty segment
		{"svc/*", "svc/a/b", false},
		{"svc/*", "svc", false},
		{"*/cfg", "app/cfg", true},
		{"*/cfg", "cfg", false},
		{"*/cfg", "a/b/cfg", false},
		// "*" inside a segment.
		{"svc/app-*", "svc/app-1", true},
		{"svc/app-*", "svc/app-", true},
		{"svc/app-*", "svc/ap-1", false},
		{"svc/app-*", "svc/app-1/x", false},
		{"svc/*-db/port", "svc/main-db/port", true},
		{"svc/a*b*c", "svc/axxbyyc", true},
		{"svc/a*b*c", "svc/axxbyy", false},
		// "**": any number of segments, none included, at the end...
		{"svc/**", "svc/a", true},
		{"svc/**", "svc/a/b/c", true},
		{"svc/**", "svc", true},
		{"svc/**", "svcx/a", false},
		// ... in the middle ...
		{"svc/**/port", "svc/port", true},
		{"svc/**/port", "svc/a/port", true},
		{"svc/**/port", "svc/a/b/port", true},
		{"svc/**/port", "svc/a/b/ports", false},
		{"svc/**/port", "x/svc/a/port", false},
		// ... and at the start.
		{"**/port", "port", true},
		{"**/port", "a/b/port", true},
		{"**/port", "a/b/port/x", false},
		{"**", "", true},
		{"**", "a/b", true},
		{"**/*/port", "a/port", true},
		{"**/*/port", "port", false},
	}
	for _, c := range cases {
		if err := checkPattern(c.pattern); err != nil {
			t.Fatalf("pattern %q refused: %v", c.pattern, err)
		}
		if got := matchPattern(c.pattern, []byte(c.key)); got != c.want {
			t.Errorf("pattern %q, key %q: got %v, want %v", c.pattern, c.key, got, c.want)
		}
	}
}

func TestCheckPatternRefusals(t *testing.T) {
	for _, p := range []string{"svc/a**", "svc/**b/c", "***", "svc/***/x"} {
		if err := checkPattern(p); err == nil {
			t.Errorf("pattern %q: accepted, want refused (\"**\" must be a whole segment)", p)
		}
	}
	for _, p := range []string{"", "svc/", "svc/**", "**/x", "a/*/b-*", "no-star"} {
		if err := checkPattern(p); err != nil {
			t.Errorf("pattern %q: refused: %v", p, err)
		}
	}
}

// Matching runs in apply for every put against every hook: a pattern full
// of stars must not make it exponential. Before the fix each of these took
// longer than any test timeout (the matcher tried every split of every star).
func TestPatternMatchingIsNotExponential(t *testing.T) {
	seg := "*" + strings.Repeat("a*", 40) + "b"
	key := strings.Repeat("a", 400)
	if matchPattern(seg, []byte(key)) {
		t.Fatalf("pattern %q matched a key without b", seg)
	}
	deep := strings.Repeat("**/a/", 30) + "b"
	keySegs := strings.TrimSuffix(strings.Repeat("a/", 400), "/")
	if matchPattern(deep, []byte(keySegs)) {
		t.Fatalf("pattern %q matched a key without b", deep)
	}
	if !matchPattern(deep, []byte(keySegs+"/b")) {
		t.Fatalf("pattern %q: did not match a key ending in b", deep)
	}
}

// globRegexp is the reference: the pattern as a regular expression. A
// pattern without '*' is a prefix; with one, "**" segments (runs of them
// are one) stand for any number of segments, '*' elsewhere for any bytes
// but '/'.
func globRegexp(p string) *regexp.Regexp {
	if !strings.Contains(p, "*") {
		return regexp.MustCompile("^" + regexp.QuoteMeta(p))
	}
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s == "**" && len(segs) > 0 && segs[len(segs)-1] == "**" {
			continue
		}
		segs = append(segs, s)
	}
	var b strings.Builder
	b.WriteString("^")
	for i, s := range segs {
		switch {
		case s == "**" && len(segs) == 1:
			b.WriteString(".*")
		case s == "**" && i == 0:
			b.WriteString("(?:.*/)?") // writes the '/' before the next segment
		case s == "**":
			b.WriteString("(?:/.*)?")
		default:
			if i > 0 && !(i == 1 && segs[0] == "**") {
				b.WriteString("/")
			}
			parts := strings.Split(s, "*")
			for j := range parts {
				parts[j] = regexp.QuoteMeta(parts[j])
			}
			b.WriteString(strings.Join(parts, "[^/]*"))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func TestPatternAgainstReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		segGen := rapid.SampledFrom([]string{"a", "b", "", "*", "**", "a*", "*b", "a*b", "ab"})
		segs := rapid.SliceOfN(segGen, 1, 5).Draw(t, "segs")
		p := strings.Join(segs, "/")
		if checkPattern(p) != nil {
			t.Skip("not a pattern")
		}
		key := rapid.StringMatching(`[ab/]{0,10}`).Draw(t, "key")
		want := globRegexp(p).MatchString(key)
		if got := matchPattern(p, []byte(key)); got != want {
			t.Fatalf("pattern %q, key %q: got %v, reference (%s) says %v", p, key, got, globRegexp(p), want)
		}
	})
}
