package main

import (
	"context"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// runJobStats prints the jobs in each state (the cluster's, as of the read)
// and the counters of the node that answered (since it started).
func runJobStats(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var st server.JobStats
	if _, err := kvClient(c).sendJSON(ctx, http.MethodGet, "/v1/aspen/job/stats", nil, nil, &st); err != nil {
		return failure("stats: %v", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	n, k := st.Counts, st.Counters
	for _, row := range []struct {
		name  string
		value uint64
	}{
		{"pending", uint64(n.Pending)}, {"leased", uint64(n.Leased)}, {"succeeded", uint64(n.Succeeded)},
		{"failed", uint64(n.Failed)}, {"dead", uint64(n.Dead)}, {"cancelled", uint64(n.Cancelled)},
		{"lease expiries", k.LeaseExpiries}, {"retries", k.Retries}, {"dead letters", k.DeadLetters},
	} {
		fmt.Fprintf(tw, "%s\t%d\n", row.name, row.value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "(lease expiries, retries and dead letters: what node %d applied since it started)\n", st.Node)
	return nil
}
