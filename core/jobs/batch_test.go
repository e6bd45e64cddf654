package jobs

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// apply validates then applies cmd at index, as the host does.
func apply(t *testing.T, m *Module, index uint64, nowNs int64, cmd module.Command) module.Answer {
	t.Helper()
	if a := m.Validate(cmd.Kind, cmd.Body); a.Outcome != module.OK {
		t.Fatalf("validate kind %d: got %v %q, want ok", cmd.Kind, a.Outcome, a.Detail)
	}
	return m.Apply(&module.Env{Index: index, NowNs: nowNs, Batch: &storage.Batch{}}, cmd.Kind, cmd.Body)
}

// Each item of a batch complete is judged alone: a stale token or an
// unknown job refuses its own item and leaves its job as it was; the
// others complete.
func TestCompleteBatchJudgesEachItem(t *testing.T) {
	m := NewModule(testLimits())
	for i := range 3 {
		apply(t, m, uint64(1+i), 1, Submit(spec("x", 0)))
	}
	leased := apply(t, m, 10, 2, Lease("w", []string{"x"}, 3)).Value.(Answer).Jobs
	if len(leased) != 3 {
		t.Fatalf("lease: got %d jobs, want 3", len(leased))
	}
	a, b, c := leased[0], leased[1], leased[2]
	got := apply(t, m, 11, 3, CompleteBatch([]CompleteItem{
		{ID: a.ID, Token: a.Token, Result: Result{Output: []byte("a")}},
		{ID: b.ID, Token: b.Token + 1}, // stale
		{ID: 99, Token: 10},            // no such job
		{ID: c.ID, Token: c.Token, Result: Result{ExitCode: 2}},
	}))
	if got.Outcome != module.OK {
		t.Fatalf("batch: got %v %q, want ok with an answer per item", got.Outcome, got.Detail)
	}
	items := got.Value.(Answer).Items
	want := []module.Outcome{module.OK, module.Conflict, module.NotFound, module.OK}
	if len(items) != len(want) {
		t.Fatalf("batch: got %d item answers, want %d", len(items), len(want))
	}
	for i, w := range want {
		if items[i].Outcome != w || (w == module.OK) != (items[i].Detail == "") {
			t.Errorf("item %d: got %v %q, want %v", i, items[i].Outcome, items[i].Detail, w)
		}
	}
	if items[0].Job.State != Succeeded || string(items[0].Job.Result.Output) != "a" || items[3].Job.Result.ExitCode != 2 {
		t.Errorf("completed items: got %+v and %+v, want succeeded with their results", items[0].Job, items[3].Job)
	}
	if j, _ := m.t.Get(b.ID); j.State != Leased || j.Token != b.Token {
		t.Errorf("job of the stale item: got %v under %d, want still leased under %d", j.State, j.Token, b.Token)
	}
	// The saved answer a retry replays: the same items (compared encoded,
	// as a nil and an empty payload decode alike).
	decoded, err := DecodeAnswer(got.Data)
	if err != nil || len(decoded.Items) != len(items) || !bytes.Equal(decoded.Encode(), got.Data) {
		t.Fatalf("saved answer: got %+v (%v), want the items as answered", decoded.Items, err)
	}
}

// A batch that is malformed or over a limit is refused whole, before it is
// proposed.
func TestCompleteBatchRefusedWhole(t *testing.T) {
	m := NewModule(testLimits())
	over := make([]CompleteItem, testLimits().LeaseJobsMax+1)
	for i := range over {
		over[i] = CompleteItem{ID: ID(i + 1), Token: 1}
	}
	big := Result{Output: make([]byte, testLimits().OutputBytesMax+1)}
	cases := []struct {
		name string
		cmd  module.Command
		want module.Outcome
	}{
		{"no items", CompleteBatch(nil), module.Invalid},
		{"over the lease size", CompleteBatch(over), module.Invalid},
		{"an item with token 0", CompleteBatch([]CompleteItem{{ID: 1, Token: 1}, {ID: 2}}), module.Invalid},
		{"an item with id 0", CompleteBatch([]CompleteItem{{Token: 1}}), module.Invalid},
		{"an output over the cap", CompleteBatch([]CompleteItem{{ID: 1, Token: 1, Result: big}}), module.TooLarge},
		{"trailing bytes", module.Command{Kind: CmdCompleteBatch, Body: append(CompleteBatch([]CompleteItem{{ID: 1, Token: 1}}).Body, 0)}, module.Invalid},
		{"count over the bytes", module.Command{Kind: CmdCompleteBatch, Body: []byte{200, 1}}, module.Invalid},
	}
	for _, c := range cases {
		if a := m.Validate(c.cmd.Kind, c.cmd.Body); a.Outcome != c.want || a.Detail == "" {
			t.Errorf("%s: got %v %q, want %v", c.name, a.Outcome, a.Detail, c.want)
		}
	}
}

// Answers without items encode as before batches (version 1), so answers
// saved in sessions by an older build still replay; a batch's answer
// round-trips, and a corrupt one does not decode.
func TestAnswerEncodings(t *testing.T) {
	single := Answer{Job: Job{ID: 3, Spec: Spec{Type: "x"}, State: Leased, Token: 9}}
	if b := single.Encode(); b[0] != answerVersion {
		t.Fatalf("answer without items: version %d, want %d", b[0], answerVersion)
	}
	batch := Answer{Items: []ItemAnswer{{Job: Job{ID: 1, State: Succeeded}}, {Outcome: module.Conflict, Detail: "stale"}}}
	got, err := DecodeAnswer(batch.Encode())
	if err != nil || !reflect.DeepEqual(got, batch) {
		t.Fatalf("batch answer: got %+v (%v), want %+v", got, err, batch)
	}
	bad := batch.Encode()
	bad[2] = byte(module.Dropped) // an outcome no item answers with
	if _, err := DecodeAnswer(bad); err == nil {
		t.Fatal("batch answer with an item outcome of dropped: decoded, want an error")
	}
}
