package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A batch complete through a follower: each item answered with the status a
// single complete would get; a stale token refuses only its own item, and
// that job stays leased.
func TestJobCompleteBatch(t *testing.T) {
	c := startCluster(t, 3)
	for range 3 {
		c.jobOK(0, "submit", `{"Type": "batch"}`)
	}
	leased := c.jobLease(1, "w1", "batch", 3)
	if len(leased) != 3 {
		t.Fatalf("lease: got %d jobs, want 3", len(leased))
	}
	a, b, x := leased[0], leased[1], leased[2]
	body := fmt.Sprintf(`{"Items": [
		{"ID": %d, "Token": %d, "Output": "done a"},
		{"ID": %d, "Token": %d},
		{"ID": 999, "Token": 1},
		{"ID": %d, "Token": %d, "ExitCode": 3}]}`, a.ID, a.Token, b.ID, b.Token+1, x.ID, x.Token)
	var got JobBatchAnswer
	if code, answer := c.jobDo(2, "complete/batch", body, &got); code != http.StatusOK {
		t.Fatalf("batch: got %d %s, want 200", code, answer)
	}
	want := []int{http.StatusOK, http.StatusConflict, http.StatusNotFound, http.StatusOK}
	if len(got.Items) != len(want) {
		t.Fatalf("batch: got %d item answers, want %d", len(got.Items), len(want))
	}
	for i, w := range want {
		it := got.Items[i]
		if it.Status != w || (w == http.StatusOK) != (it.Job != nil) || (w == http.StatusOK) != (it.Error == "") {
			t.Errorf("item %d: got %+v, want status %d with a job or an error", i, it, w)
		}
	}
	if j := got.Items[0].Job; j.State != "succeeded" || j.Result == nil || j.Result.Output != "done a" {
		t.Errorf("item 0: got %+v, want succeeded with its output", j)
	}
	if j := got.Items[3].Job; j.Result == nil || j.Result.ExitCode != 3 {
		t.Errorf("item 3: got %+v, want exit code 3", j)
	}
	if j := c.jobOK(0, "get", fmt.Sprintf(`{"ID": %d}`, b.ID)); j.State != "leased" || j.Token != b.Token {
		t.Errorf("job of the stale item: got %s under %d, want leased under %d", j.State, j.Token, b.Token)
	}
	// The single-item API still answers as before.
	if code, answer := c.jobDo(0, "complete", fmt.Sprintf(`{"ID": %d, "Token": %d}`, b.ID, b.Token), nil); code != http.StatusOK {
		t.Fatalf("single complete: got %d %s, want 200", code, answer)
	}
}

// A batch the replica cannot take is refused whole, and nothing applies.
func TestJobCompleteBatchRefusals(t *testing.T) {
	c := startCluster(t, 3)
	c.jobOK(0, "submit", `{"Type": "batch"}`)
	j := c.jobLease(0, "w1", "batch", 1)[0]
	many := strings.Repeat(fmt.Sprintf(`{"ID": %d, "Token": %d},`, j.ID, j.Token), 17)
	cases := []struct {
		name, body string
		want       int
	}{
		{"no items", `{"Items": []}`, http.StatusBadRequest},
		{"no body", ``, http.StatusBadRequest},
		{"a misspelt field", `{"Itemz": []}`, http.StatusBadRequest},
		{"an item without a token", fmt.Sprintf(`{"Items": [{"ID": %d, "Token": %d}, {"ID": %d}]}`, j.ID, j.Token, j.ID), http.StatusBadRequest},
		{"more items than a lease gives", `{"Items": [` + strings.TrimSuffix(many, ",") + `]}`, http.StatusBadRequest},
		{"an output over the cap", fmt.Sprintf(`{"Items": [{"ID": %d, "Token": %d, "Output": %q}]}`, j.ID, j.Token, strings.Repeat("x", 65<<10)), http.StatusRequestEntityTooLarge},
	}
	for _, cs := range cases {
		if code, answer := c.jobDo(0, "complete/batch", cs.body, nil); code != cs.want {
			t.Errorf("%s: got %d %s, want %d", cs.name, code, answer, cs.want)
		}
	}
	if got := c.jobOK(0, "get", fmt.Sprintf(`{"ID": %d}`, j.ID)); got.State != "leased" {
		t.Fatalf("after refused batches: job %s, want still leased", got.State)
	}
	if code, _, _ := do(t, "GET", c.url(0, "/v1/aspen/job/complete/batch"), ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: got %d, want 405", code)
	}
}
