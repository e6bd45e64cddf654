package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

// sessionInfo is a session as Consul's /v1/session API answers it.
type sessionInfo struct {
	ID, Name, Node, Behavior, TTL string
	LockDelay                     time.Duration
	CreateIndex                   uint64
}

func sessionCommand() *cli.Command {
	return &cli.Command{
		Name:  "session",
		Usage: "create, list, renew and destroy Consul sessions (what ?acquire= locks are held by)",
		Subcommands: []*cli.Command{
			kvLeaf("create", "create a session and print its id", "", runSessionCreate,
				&cli.StringFlag{Name: "name", Usage: "a name for people to read"},
				&cli.StringFlag{Name: "ttl", Usage: "end the session unless renewed within this duration (e.g. 15s; at least 10s); default: no TTL"},
				&cli.StringFlag{Name: "behavior", Usage: "what ending the session does to the keys it holds: release or delete", Value: "release"},
				&cli.DurationFlag{Name: "lock-delay", Usage: "how long a key the session held when it ended stays unlockable", Value: 15 * time.Second},
				&cli.StringFlag{Name: "node", Usage: "the node the session belongs to (aspen-ID); default: the node asked"}),
			kvLeaf("list", "list every session, or a node's", "", runSessionList,
				&cli.StringFlag{Name: "node", Usage: "only this node's sessions (aspen-ID)"}),
			kvLeaf("info", "print one session", "ID", runSessionInfo),
			kvLeaf("renew", "restart a session's TTL", "ID", runSessionRenew),
			kvLeaf("destroy", "end a session now, releasing (or deleting) the keys it holds", "ID", runSessionDestroy),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

func runSessionCreate(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	// The lock delay goes as a duration string: a bare number below 1000
	// would be read as seconds (Consul's rule).
	body, _ := json.Marshal(map[string]string{"Name": c.String("name"), "TTL": c.String("ttl"), "Behavior": c.String("behavior"),
		"LockDelay": c.Duration("lock-delay").String(), "Node": c.String("node")})
	var created struct{ ID string }
	if err := sessionCall(c, http.MethodPut, "/v1/session/create", nil, body, &created); err != nil {
		return failure("create: %v", err)
	}
	fmt.Fprintln(c.App.Writer, created.ID)
	return nil
}

func runSessionList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	path := "/v1/session/list"
	if node := c.String("node"); node != "" {
		path = "/v1/session/node/" + node
	}
	var list []sessionInfo
	if err := sessionCall(c, http.MethodGet, path, nil, nil, &list); err != nil {
		return failure("list: %v", err)
	}
	return printSessions(c, list)
}

func runSessionInfo(c *cli.Context) error {
	args, err := exactArgs(c, "ID")
	if err != nil {
		return err
	}
	var list []sessionInfo
	if err := sessionCall(c, http.MethodGet, "/v1/session/info/"+args[0], nil, nil, &list); err != nil {
		return failure("info: %v", err)
	}
	if len(list) == 0 {
		return failure("info: no session %s", args[0])
	}
	return printSessions(c, list)
}

func runSessionRenew(c *cli.Context) error {
	args, err := exactArgs(c, "ID")
	if err != nil {
		return err
	}
	var list []sessionInfo
	if err := sessionCall(c, http.MethodPut, "/v1/session/renew/"+args[0], nil, nil, &list); err != nil || len(list) == 0 {
		return failure("renew: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "renewed session %s; TTL %s\n", list[0].ID, list[0].TTL)
	return nil
}

func runSessionDestroy(c *cli.Context) error {
	args, err := exactArgs(c, "ID")
	if err != nil {
		return err
	}
	var ok bool
	if err := sessionCall(c, http.MethodPut, "/v1/session/destroy/"+args[0], nil, nil, &ok); err != nil {
		return failure("destroy: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "destroyed session %s\n", args[0])
	return nil
}

func sessionCall(c *cli.Context, method, path string, query url.Values, body []byte, v any) error {
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	_, err := kvClient(c).sendJSON(ctx, method, path, query, body, v)
	return err
}

func printSessions(c *cli.Context, list []sessionInfo) error {
	if len(list) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tNODE\tTTL\tBEHAVIOR\tLOCK DELAY")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", s.ID, orDash(s.Name), s.Node, orDash(s.TTL), s.Behavior, s.LockDelay)
	}
	return tw.Flush()
}
