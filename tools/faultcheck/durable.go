package faultcheck

import "fmt"

// checkDurable compares each of a key's final reads with the writes to that
// key. With f the value a final read returned, it checks:
//
//   - f is "" (absent) only if no write to the key was acknowledged;
//   - otherwise f is the value of a write that was acknowledged or whose
//     outcome is unknown, never a value nobody wrote;
//   - for every acknowledged write a to the key, f is a's value or the value
//     of a write w that had not finished before a began (w.Return >= a.Call).
//     A write that finished before a began comes before a in every
//     linearization, so it can be the key's last write only if a was lost.
//
// The final reads start after every client stopped, so every acknowledged
// write precedes them; writes with unknown outcomes may still land later,
// which is why their values are accepted. Keys without a final read are
// reported by Check as unread, not here.
func checkDurable(h *History) []string {
	var lost []string
	for i, ops := range byKey(h) {
		for _, final := range ops {
			if final.Final {
				lost = append(lost, checkKeyDurable(h.Keys[i], final, ops)...)
			}
		}
	}
	return lost
}

func checkKeyDurable(key string, final Op, ops []Op) []string {
	writers := map[string]Op{}
	for _, op := range ops {
		if op.MayHaveWritten() {
			writers[op.Value] = op
		}
	}
	w, written := writers[final.Value]
	var lost []string
	if final.Value != "" && !written {
		lost = append(lost, fmt.Sprintf("key %s: final read %s returned a value no write wrote", key, final))
	}
	for _, a := range ops {
		switch {
		case !a.Acked() || a.Value == final.Value:
		case final.Value == "":
			lost = append(lost, fmt.Sprintf("key %s: acknowledged %s, but the final read %s found the key absent", key, a, final))
		case written && w.Return < a.Call:
			lost = append(lost, fmt.Sprintf("key %s: acknowledged %s, but the final read %s returned the value of %s, which finished before it began",
				key, a, final, w))
		}
	}
	return lost
}

// checkIndexes verifies that every value is seen at one ModifyIndex, by
// every get that read it and by the write's own answer. The model's cas rule
// rests on this (see model.go).
func checkIndexes(ops []Op) []string {
	type key struct{ key, value string }
	first := map[key]Op{}
	var conflicts []string
	for _, op := range ops {
		if !observesIndex(op) {
			continue
		}
		k := key{op.Key, op.Value}
		seen, ok := first[k]
		switch {
		case !ok:
			first[k] = op
		case seen.Index != op.Index:
			conflicts = append(conflicts, fmt.Sprintf("key %s value %q: index %d from %s, index %d from %s",
				op.Key, op.Value, seen.Index, seen, op.Index, op))
		}
	}
	return conflicts
}

// observesIndex says whether op learned the index its value is stored at.
func observesIndex(op Op) bool {
	return (op.Kind == Get && op.Value != "") || op.Acked()
}
