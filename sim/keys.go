package sim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aspen-db/aspen/core/kv"
)

// keySuffixes name a group's keys, in key-index order. They are shaped to
// reach the store's edges: a key and its immediate successor ("a" and
// "a\x00"), keys that extend others ("ab", "a/b": "a" is a prefix of both),
// bytes at both ends of the range, and the group prefix itself as a key.
var keySuffixes = [modelKeysMax]string{"a", "a\x00", "ab", "\xff", "a/b", "\x00", "b", ""}

// keyNames returns each group's key names: g<group>/<suffix>.
func keyNames(groups, keys int) [][]string {
	names := make([][]string, groups)
	for g := range names {
		for k := 0; k < keys; k++ {
			names[g] = append(names[g], groupPrefix(g)+keySuffixes[k])
		}
	}
	return names
}

// keyOrder lists key indexes in the byte order of their names, which is the
// order scans return them in.
var keyOrder = func() []int {
	order := make([]int, modelKeysMax)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(keySuffixes[a], keySuffixes[b]) })
	return order
}()

func groupPrefix(g int) string { return fmt.Sprintf("g%d/", g) }

// groupEnd is above every key of group g and below every other group's keys.
func groupEnd(g int) string { return groupPrefix(g) + "\xff\xff" }

// genPrefix draws a prefix scan: of the whole group, or of one of its keys,
// which covers that key and the keys extending it.
func (w *World) genPrefix(in *opInput) {
	prefix := groupPrefix(in.Group)
	if w.rng.IntN(2) == 0 {
		prefix = w.names[in.Group][w.rng.IntN(len(w.names[in.Group]))]
	}
	in.Lo, in.Prefix = prefix, true
	for k, name := range w.names[in.Group] {
		if strings.HasPrefix(name, prefix) {
			in.Span |= 1 << k
		}
	}
}

// genInterval draws [start, end) from the group's boundaries: on a key, just
// before it, just after it, and the group's own ends.
func (w *World) genInterval(in *opInput) {
	bounds := w.boundaries(in.Group)
	i, j := w.rng.IntN(len(bounds)), w.rng.IntN(len(bounds)-1)
	if j >= i {
		j++ // two different boundaries
	}
	start, end := bounds[min(i, j)], bounds[max(i, j)]
	in.Lo, in.Hi = start, end
	for k, name := range w.names[in.Group] {
		if start <= name && name < end {
			in.Span |= 1 << k
		}
	}
}

// boundaries lists, in order and without repeats, the range ends worth
// testing in group g. The list is shared: callers must not modify it.
func (w *World) boundaries(g int) []string {
	if w.bounds == nil {
		w.bounds = make([][]string, len(w.names))
	}
	if w.bounds[g] == nil {
		w.bounds[g] = groupBoundaries(w.names[g], g)
	}
	return w.bounds[g]
}

func groupBoundaries(names []string, g int) []string {
	seen := map[string]bool{groupPrefix(g): true, groupEnd(g): true}
	for _, name := range names {
		seen[name], seen[name+"\x00"] = true, true
		if before, ok := justBefore(name); ok && before >= groupPrefix(g) {
			seen[before] = true
		}
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// justBefore returns a string just below name: name with its last byte
// lowered and 0xff appended, or name without a trailing zero byte.
func justBefore(name string) (string, bool) {
	n := len(name)
	switch {
	case n == 0:
		return "", false
	case name[n-1] == 0:
		return name[:n-1], true
	}
	return name[:n-1] + string([]byte{name[n-1] - 1}) + "\xff", true
}

// spanOp is the store's op for a scan or range the model drew.
func spanOp(t kv.OpType, in opInput) kv.Op {
	if in.Prefix {
		return kv.Op{Type: t, Key: []byte(in.Lo), Prefix: true, Limit: in.Limit}
	}
	return kv.Op{Type: t, Key: []byte(in.Lo), End: []byte(in.Hi), Limit: in.Limit}
}

// scanLimitOneIn is how rarely a scan or range carries a limit (1..3).
const scanLimitOneIn = 4

func (w *World) maybeLimit(in *opInput) {
	if w.rng.IntN(scanLimitOneIn) == 0 {
		in.Limit = 1 + w.rng.IntN(3)
	}
}
