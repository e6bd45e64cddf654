package faultcheck

import (
	"fmt"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/internal/linearize"
)

// The model is one register per key, holding the key's value ("" = absent).
//
// The server's cas compares the key's ModifyIndex with ?cas=N, while the
// model compares values. The two agree because a cas only ever names an index
// that a get returned together with a value: (value v, index m). Writes carry
// unique values and each revision is one single-key transaction, so "the key's
// ModifyIndex is m" holds exactly when the key's last write is the one at
// revision m, which wrote v, which holds exactly when the key's value is v
// (only one write ever wrote v). That last step assumes each value is stored
// at one index; checkIndexes verifies it from every observation, so a
// history that breaks the assumption fails the check instead of being judged
// by a wrong model. ?cas=0 ("must not exist") is the same rule with v = ""
// and m = 0: the workload never deletes.

// modelInput is an operation's call as the model sees it.
type modelInput struct {
	Kind   Kind
	Key    string
	Value  string // put and cas: the value written
	Expect string // cas: the value that must be current
}

// modelOutput is an operation's answer. Unknown outcomes are accepted with
// or without their effect: with Return at the end of time, porcupine may put
// one that never happened after every other op, where its effect is unseen.
type modelOutput struct {
	Value   string // get: the value read
	OK      bool   // put: answered true; cas: the compare held
	Unknown bool
}

// registerModel is a register per key, partitioned by key.
var registerModel = porcupine.Model{
	Partition:         linearize.PartitionBy(func(op porcupine.Operation) string { return op.Input.(modelInput).Key }),
	Init:              func() interface{} { return "" },
	Step:              step,
	DescribeOperation: describeOperation,
	DescribeState:     func(state interface{}) string { return fmt.Sprintf("%q", state) },
}

func step(state, input, output interface{}) (bool, interface{}) {
	s, in, out := state.(string), input.(modelInput), output.(modelOutput)
	switch in.Kind {
	case Get:
		return out.Value == s, s
	case Put:
		// A plain put cannot answer false.
		return out.Unknown || out.OK, in.Value
	case CAS:
		held := s == in.Expect
		if !out.Unknown && out.OK != held {
			return false, s
		}
		if held {
			return true, in.Value
		}
		return true, s
	}
	return false, s
}

func describeOperation(input, output interface{}) string {
	in, out := input.(modelInput), output.(modelOutput)
	result := fmt.Sprint(out.OK)
	if out.Unknown {
		result = "unknown"
	}
	switch in.Kind {
	case Get:
		return fmt.Sprintf("get %s -> %q", in.Key, out.Value)
	case Put:
		return fmt.Sprintf("put %s = %q: %s", in.Key, in.Value, result)
	}
	return fmt.Sprintf("cas %s %q -> %q: %s", in.Key, in.Expect, in.Value, result)
}

// toOperation converts one recorded op for porcupine.
func toOperation(op Op) porcupine.Operation {
	return porcupine.Operation{
		ClientId: op.Process,
		Input:    modelInput{Kind: op.Kind, Key: op.Key, Value: writtenValue(op), Expect: op.Expect},
		Call:     op.Call,
		Output:   modelOutput{Value: readValue(op), OK: op.OK, Unknown: op.Unknown},
		Return:   op.Return,
		Metadata: op.Addr,
	}
}

func writtenValue(op Op) string {
	if op.Kind == Get {
		return ""
	}
	return op.Value
}

func readValue(op Op) string {
	if op.Kind == Get {
		return op.Value
	}
	return ""
}
