package sim

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// modelKeysMax bounds keys per group, so a group's state is a comparable array.
const modelKeysMax = 8

type opKind uint8

const (
	kGet opKind = iota + 1
	kPut
	kDelete
	kCAS
	kTxn
	kScan
	kDeletePrefix
)

type cmpKind uint8

const (
	cmpValue  cmpKind = iota + 1 // value equals Value
	cmpExists                    // key exists
	cmpAbsent                    // key does not exist
	cmpModRev                    // mod revision equals the one seen with Value ("" = absent, revision 0)
)

// txnCmp and txnOp are a workload transaction as the model sees it; each put
// writes a value no other put writes, so a value names the write that made it.
type txnCmp struct {
	Kind  cmpKind
	Key   int
	Value string
	Rev   int64
}

type txnOp struct {
	Kind  opKind // kGet, kPut or kDelete
	Key   int
	Value string
}

// opInput is one client operation on one group of keys.
type opInput struct {
	Kind  opKind
	Group int
	Key   int
	Value string // put value; for CAS the new value
	Cmps  []txnCmp
	Then  []txnOp
	Else  []txnOp
}

// opOutput is what the client saw. Unknown means the outcome is not known (the
// client gave up), so the model accepts it having happened or not.
type opOutput struct {
	Unknown bool
	Ok      bool     // CAS or txn compares held
	Values  []string // get: one; scan: one per key; txn: one per get in the branch taken
}

type groupState [modelKeysMax]string

// stepModel is the sequential specification of one key group.
func stepModel(s groupState, in opInput, out opOutput) (bool, groupState) {
	switch in.Kind {
	case kGet:
		return out.Unknown || (len(out.Values) == 1 && out.Values[0] == s[in.Key]), s
	case kPut:
		s[in.Key] = in.Value
		return true, s
	case kDelete:
		s[in.Key] = ""
		return true, s
	case kCAS:
		ok := cmpHolds(s, in.Cmps[0])
		if ok {
			s[in.Key] = in.Value
		}
		return out.Unknown || out.Ok == ok, s
	case kScan:
		// A scan that returned a key outside the group has one value too many.
		return out.Unknown || (len(out.Values) <= len(s) && slices.Equal(out.Values, s[:len(out.Values)])), s
	case kDeletePrefix:
		return true, groupState{}
	case kTxn:
		return stepTxn(s, in, out)
	}
	return false, s
}

func stepTxn(s groupState, in opInput, out opOutput) (bool, groupState) {
	ok := true
	for _, c := range in.Cmps {
		ok = ok && cmpHolds(s, c)
	}
	branch := in.Then
	if !ok {
		branch = in.Else
	}
	var got []string
	for _, op := range branch {
		switch op.Kind {
		case kGet:
			got = append(got, s[op.Key])
		case kPut:
			s[op.Key] = op.Value
		case kDelete:
			s[op.Key] = ""
		}
	}
	if out.Unknown {
		return true, s
	}
	return out.Ok == ok && slices.Equal(out.Values, got), s
}

func cmpHolds(s groupState, c txnCmp) bool {
	switch c.Kind {
	case cmpValue:
		return s[c.Key] != "" && s[c.Key] == c.Value
	case cmpExists:
		return s[c.Key] != ""
	case cmpAbsent:
		return s[c.Key] == ""
	case cmpModRev:
		return s[c.Key] == c.Value
	}
	return false
}

// groupModel checks each key group on its own: every operation touches exactly
// one group, which makes partitioning sound even for scans and transactions.
func groupModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byGroup := map[int][]porcupine.Operation{}
			for _, op := range history {
				g := op.Input.(opInput).Group
				byGroup[g] = append(byGroup[g], op)
			}
			groups := make([]int, 0, len(byGroup))
			for g := range byGroup {
				groups = append(groups, g)
			}
			sort.Ints(groups) // porcupine's own order would come from map iteration
			out := make([][]porcupine.Operation, 0, len(groups))
			for _, g := range groups {
				out = append(out, byGroup[g])
			}
			return out
		},
		Init: func() any { return groupState{} },
		Step: func(state, input, output any) (bool, any) {
			return stepModel(state.(groupState), input.(opInput), output.(opOutput))
		},
		Equal:             func(a, b any) bool { return a.(groupState) == b.(groupState) },
		DescribeOperation: func(input, output any) string { return describeOp(input.(opInput), output.(opOutput)) },
		DescribeState: func(state any) string {
			s := state.(groupState)
			var parts []string
			for i, v := range s {
				if v != "" {
					parts = append(parts, fmt.Sprintf("k%d=%s", i, v))
				}
			}
			return "{" + strings.Join(parts, " ") + "}"
		},
	}
}

func describeOp(in opInput, out opOutput) string {
	res := fmt.Sprintf("ok=%v %v", out.Ok, out.Values)
	if out.Unknown {
		res = "unknown"
	}
	switch in.Kind {
	case kGet:
		return fmt.Sprintf("get(g%d/k%d) -> %s", in.Group, in.Key, res)
	case kPut:
		return fmt.Sprintf("put(g%d/k%d, %s) -> %s", in.Group, in.Key, in.Value, res)
	case kDelete:
		return fmt.Sprintf("delete(g%d/k%d) -> %s", in.Group, in.Key, res)
	case kCAS:
		return fmt.Sprintf("cas(g%d/k%d, %q -> %s) -> %s", in.Group, in.Key, in.Cmps[0].Value, in.Value, res)
	case kScan:
		return fmt.Sprintf("scan(g%d/) -> %s", in.Group, res)
	case kDeletePrefix:
		return fmt.Sprintf("delete_prefix(g%d/) -> %s", in.Group, res)
	}
	return fmt.Sprintf("txn(g%d, if %v then %v else %v) -> %s", in.Group, in.Cmps, in.Then, in.Else, res)
}
