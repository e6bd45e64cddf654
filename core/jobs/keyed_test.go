package jobs

import (
	"fmt"
	"testing"
)

// TestListKeyedPagesThroughABoundedScan walks the jobs whose key starts
// with a prefix page by page, through the module's query as a client
// would: every match once, in id order, no other job, and no page that
// looked at more than its bound of jobs.
func TestListKeyedPagesThroughABoundedScan(t *testing.T) {
	l := DefaultLimits()
	l.JobsMax = 200
	m := NewModule(l)
	var want []ID
	for i := range 100 {
		s := spec("x", 0)
		s.Key = fmt.Sprintf("other:%d", i)
		if i%10 == 3 || i >= 95 {
			s.Key = fmt.Sprintf("deploy:%d:k", i)
		}
		if i == 50 {
			s.Key = "" // a job without a key never matches
		}
		j, _, err := m.t.Submit(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if s.Key != "" && s.Key[:7] == "deploy:" {
			want = append(want, j.ID)
		}
	}
	const n = 2 // a scan of at most 16 jobs a page
	var got []ID
	after, pages := ID(0), 0
	for ; pages < 100; pages++ {
		a := m.Query(QueryList, ListKeyed(Pending, after, n, "deploy:").Body, 0)
		if a.Detail != "" {
			t.Fatal(a.Detail)
		}
		ans, err := DecodeAnswer(a.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Jobs) > n {
			t.Fatalf("page after %d: got %d jobs, want at most %d", after, len(ans.Jobs), n)
		}
		for _, j := range ans.Jobs {
			if j.ID <= after || j.ID > after+listScanPages*n {
				t.Fatalf("page after %d holds job %d: past the scan bound of %d jobs", after, j.ID, listScanPages*n)
			}
			got = append(got, j.ID)
		}
		if ans.Next == 0 {
			break
		}
		after = ans.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keyed pages: got %v, want %v", got, want)
	}
	if pages < 100/(listScanPages*n) {
		t.Fatalf("walked %d pages, want at least %d: a page looked at more than its bound", pages, 100/(listScanPages*n))
	}
	// Without a prefix the query is List, as before.
	a := m.Query(QueryList, List(Pending, 0, 3).Body, 0)
	if ans, _ := DecodeAnswer(a.Data); len(ans.Jobs) != 3 || ans.Next != 3 {
		t.Fatalf("unkeyed list: got %d jobs, next %d; want 3, next 3", len(ans.Jobs), ans.Next)
	}
}
