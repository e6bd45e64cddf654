package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// keepAliveRetryPause spaces renewals that fail at once (the node is down):
// one error line a second, yet a node back up is reached well within the
// shortest TTL (2 s).
const keepAliveRetryPause = time.Second

func leaseCommand() *cli.Command {
	return &cli.Command{
		Name:  "lease",
		Usage: "grant, renew, inspect and revoke leases (keys put with --lease go when their lease does)",
		Subcommands: []*cli.Command{
			kvLeaf("grant", "grant a lease of TTL seconds (or a duration such as 10m) and print its id", "TTL", runLeaseGrant,
				&cli.Int64Flag{Name: "id", Usage: "grant this id (default: the cluster picks one)"}),
			kvLeaf("keepalive", "renew a lease every third of its TTL until Ctrl-C", "ID", runLeaseKeepAlive,
				&cli.BoolFlag{Name: "once", Usage: "renew once and exit"}),
			kvLeaf("revoke", "end a lease now, deleting its keys", "ID", runLeaseRevoke),
			kvLeaf("ttl", "print a lease's granted TTL, the time it has left and its key count", "ID", runLeaseTTL,
				&cli.BoolFlag{Name: "keys", Usage: "also list its keys, one per line"}),
			kvLeaf("list", "list every lease with its granted TTL and key count", "", runLeaseList),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// leaseCall POSTs req to a lease endpoint and decodes the answer into v.
func leaseCall(ctx context.Context, c *cli.Context, op string, req server.LeaseRequest, v any) error {
	return kvClient(c).postAspen(ctx, "lease/"+op, req, v)
}

func runLeaseGrant(c *cli.Context) error {
	args, err := exactArgs(c, "TTL")
	if err != nil {
		return err
	}
	ttl, err := parseTTL(args[0])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var l server.LeaseInfo
	if err := leaseCall(ctx, c, "grant", server.LeaseRequest{ID: c.Int64("id"), TTL: ttl}, &l); err != nil {
		return failure("grant: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "granted lease %d with TTL %ds\n", l.ID, l.GrantedTTL)
	return nil
}

// parseTTL reads whole seconds, as a number or a duration ("90", "90s", "10m").
func parseTTL(arg string) (int64, error) {
	if n, err := strconv.ParseInt(arg, 10, 64); err == nil && n > 0 {
		return n, nil
	}
	d, err := time.ParseDuration(arg)
	if err != nil || d <= 0 || d%time.Second != 0 {
		return 0, usageError("TTL must be a positive whole number of seconds (or a duration such as 10m), got %q", arg)
	}
	return int64(d / time.Second), nil
}

// leaseID reads the one argument, a lease id.
func leaseID(c *cli.Context) (int64, error) {
	args, err := exactArgs(c, "ID")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError("ID must be a positive lease id, got %q", args[0])
	}
	return id, nil
}

func runLeaseRevoke(c *cli.Context) error {
	id, err := leaseID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var r server.LeaseRevoked
	if err := leaseCall(ctx, c, "revoke", server.LeaseRequest{ID: id}, &r); err != nil {
		return failure("revoke: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "revoked lease %d; its keys were deleted at revision %d\n", id, r.Revision)
	return nil
}

func runLeaseTTL(c *cli.Context) error {
	id, err := leaseID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var l server.LeaseInfo
	if err := leaseCall(ctx, c, "ttl", server.LeaseRequest{ID: id, Keys: c.Bool("keys")}, &l); err != nil {
		return failure("ttl: %v", err)
	}
	keys := "keys"
	if l.KeyCount == 1 {
		keys = "key"
	}
	fmt.Fprintf(c.App.Writer, "lease %d: granted TTL %ds, %ds left, %d %s\n", l.ID, l.GrantedTTL, l.TTL, l.KeyCount, keys)
	for _, k := range l.Keys {
		fmt.Fprintln(c.App.Writer, k)
	}
	return nil
}

func runLeaseList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var list server.LeaseList
	if err := leaseCall(ctx, c, "list", server.LeaseRequest{}, &list); err != nil {
		return failure("list: %v", err)
	}
	if len(list.Leases) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEASE\tGRANTED TTL\tKEYS")
	for _, l := range list.Leases {
		fmt.Fprintf(tw, "%d\t%ds\t%d\n", l.ID, l.GrantedTTL, l.KeyCount)
	}
	return tw.Flush()
}

func runLeaseKeepAlive(c *cli.Context) error {
	id, err := leaseID(c)
	if err != nil {
		return err
	}
	if c.Bool("once") {
		ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
		defer cancel()
		if _, err := renew(ctx, c, id); err != nil {
			return failure("keepalive of lease %d: %v", id, err)
		}
		return nil
	}
	// Ctrl-C is how a keep-alive ends, so it is a clean exit, not a kill.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return keepAlive(ctx, c, id)
}

// keepAlive renews lease id every third of its TTL until ctx ends. A
// renewal may wait for as long as the lease lasts (the node holds it through
// an election); one that fails is retried, at once if it failed slowly and
// after a pause if it failed fast (the node is down). A renewal the cluster
// refuses (the lease is gone) ends it.
func keepAlive(ctx context.Context, c *cli.Context, id int64) error {
	timeout := requestTimeout // until the TTL is known
	for {
		start := time.Now()
		attempt, cancel := context.WithTimeout(ctx, timeout)
		l, err := renew(attempt, c, id)
		cancel()
		var status *statusError
		var pause time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &status) && status.Code/100 == 4:
			return failure("keepalive of lease %d: %v", id, err)
		case err != nil:
			fmt.Fprintf(c.App.ErrWriter, "aspen: keepalive of lease %d: %v; retrying\n", id, err)
			pause = keepAliveRetryPause - time.Since(start)
		default:
			timeout = time.Duration(l.GrantedTTL) * time.Second
			pause = timeout / 3
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil
		}
	}
}

// renew sends one keep-alive and prints the lease's new TTL.
func renew(ctx context.Context, c *cli.Context, id int64) (server.LeaseInfo, error) {
	var l server.LeaseInfo
	if err := leaseCall(ctx, c, "keepalive", server.LeaseRequest{ID: id}, &l); err != nil {
		return l, err
	}
	fmt.Fprintf(c.App.Writer, "lease %d kept alive; TTL %ds\n", l.ID, l.TTL)
	return l, nil
}
