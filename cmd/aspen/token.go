package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

// Tokens are signed here, with the cluster key file, never by a node over
// HTTP: an anonymous client of the API cannot mint one.

func keyFlag() cli.Flag {
	return &cli.StringFlag{Name: "key", Usage: "the cluster key file (aspen token keygen)", Required: true}
}

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and revoke capability tokens (what a holder may run, where, until when)",
		Subcommands: []*cli.Command{
			{Name: "keygen", Usage: "write a new cluster key to FILE (mode 0600); give the same file to every node (token_key_file)",
				ArgsUsage: "FILE", OnUsageError: onUsageError, Action: runTokenKeygen},
			kvLeaf("create", "sign a token with the key file, register its claims with the cluster, and print it", "", runTokenCreate,
				keyFlag(),
				&cli.StringFlag{Name: "subject", Usage: "who holds it", Required: true},
				&cli.StringSliceFlag{Name: "command", Usage: "a pattern argv[0] may match (repeat)", Required: true},
				&cli.StringSliceFlag{Name: "dir", Usage: "a directory the command may run in (repeat)", Required: true},
				&cli.DurationFlag{Name: "ttl", Usage: "how long it is valid", Value: 24 * time.Hour},
				&cli.StringFlag{Name: "id", Usage: "its id (default: random)"}),
			kvLeaf("list", "list registered and revoked tokens (never their signatures)", "", runTokenList),
			kvLeaf("revoke", "revoke a token now, on every node", "ID", runTokenRevoke, keyFlag(),
				&cli.Int64Flag{Name: "expires-ns", Usage: "the token's expiry, needed when it was never registered"}),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "read and verify the hash-chained log of executions",
		Subcommands: []*cli.Command{
			kvLeaf("list", "print audit records", "", runAuditList,
				&cli.Uint64Flag{Name: "after", Usage: "start after this sequence number"},
				&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many records"}),
			kvLeaf("verify", "fetch every record and check the chain: a modified, removed or reordered record fails", "", runAuditVerify),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

func runTokenKeygen(c *cli.Context) error {
	args, err := exactArgs(c, "FILE")
	if err != nil {
		return err
	}
	if err := server.GenerateKeyFile(args[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: give every node this file (token_key_file) and keep it secret\n", args[0])
	return nil
}

func runTokenCreate(c *cli.Context) error {
	key, err := server.ReadKeyFile(c.String("key"))
	if err != nil {
		return err
	}
	id := c.String("id")
	if id == "" {
		b := make([]byte, 12)
		rand.Read(b)
		id = hex.EncodeToString(b)
	}
	now := time.Now()
	claims := token.Claims{ID: id, Subject: c.String("subject"), Commands: c.StringSlice("command"), Dirs: c.StringSlice("dir"),
		IssuedNs: now.UnixNano(), ExpiresNs: now.Add(c.Duration("ttl")).UnixNano()}
	tok, err := token.Sign(key, claims)
	if err != nil {
		return usageError("%v", err)
	}
	body, _ := json.Marshal(server.TokenRequest{Token: tok})
	var out server.TokenList
	if _, err := kvClient(c).sendJSON(c.Context, http.MethodPost, "/v1/aspen/token/register", nil, body, &out); err != nil {
		return fmt.Errorf("register token %s: %w", id, err)
	}
	fmt.Fprintln(c.App.Writer, tok)
	return nil
}

func runTokenList(c *cli.Context) error {
	var out server.TokenList
	if _, err := kvClient(c).getJSON(c.Context, "/v1/aspen/token/list", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tEXPIRES\tREVOKED\tCOMMANDS\tDIRS")
	for _, t := range out.Tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%q\t%q\n", t.ID, t.Subject, time.Unix(0, t.ExpiresNs).UTC().Format(time.RFC3339), t.Revoked, t.Commands, t.Dirs)
	}
	return tw.Flush()
}

func runTokenRevoke(c *cli.Context) error {
	args, err := exactArgs(c, "ID")
	if err != nil {
		return err
	}
	key, err := server.ReadKeyFile(c.String("key"))
	if err != nil {
		return err
	}
	const path = "/v1/aspen/token/revoke"
	cmd := tokens.Revoke(args[0], c.Int64("expires-ns"))
	req := server.TokenRequest{ID: args[0], ExpiresNs: c.Int64("expires-ns"), Signature: hex.EncodeToString(token.RequestMAC(key, path, cmd.Body))}
	body, _ := json.Marshal(req)
	var out server.TokenList
	if _, err := kvClient(c).sendJSON(c.Context, http.MethodPost, path, nil, body, &out); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "revoked %s\n", args[0])
	return nil
}

func runAuditList(c *cli.Context) error {
	q := url.Values{"after": {strconv.FormatUint(c.Uint64("after"), 10)}, "limit": {strconv.Itoa(c.Int("limit"))}}
	var out server.AuditList
	if _, err := kvClient(c).getJSON(c.Context, "/v1/aspen/audit/list", q, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tKIND\tTOKEN\tWORKER\tOUTCOME\tDIR\tARGV")
	for _, r := range out.Records {
		if r.Exec == nil {
			fmt.Fprintf(tw, "%d\t%s\t\t\t\t\tpruned through %d\n", r.Seq, r.Kind, r.PrunedSeq)
			continue
		}
		e := r.Exec
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%q\n", r.Seq, r.Kind, e.TokenID, e.Worker, execOutcome(e), e.Dir, e.Argv)
	}
	return tw.Flush()
}

// execOutcome says in a word or two how an execution ended.
func execOutcome(e *audit.Exec) string {
	switch {
	case e.Refused != "":
		return "refused"
	case e.Signal != "":
		return e.Signal
	}
	return fmt.Sprintf("exit %d", e.Exit)
}

// auditVerifyPagesMax bounds verify's walk: the log holds at most 50,000
// records, fetched 1,000 at a time.
const auditVerifyPagesMax = 1000

func runAuditVerify(c *cli.Context) error {
	var recs []audit.Record
	var head audit.Head
	after := uint64(0)
	for page := 0; page < auditVerifyPagesMax; page++ {
		q := url.Values{"after": {strconv.FormatUint(after, 10)}, "limit": {strconv.Itoa(audit.ListMax)}}
		var out server.AuditList
		if _, err := kvClient(c).getJSON(c.Context, "/v1/aspen/audit/list", q, &out); err != nil {
			return err
		}
		if page == 0 {
			h, err := hex.DecodeString(out.HeadHash)
			if err != nil || len(h) != len(head.Hash) {
				return fmt.Errorf("head hash %q is malformed", out.HeadHash)
			}
			head.Seq = out.HeadSeq
			copy(head.Hash[:], h)
		}
		for _, r := range out.Records {
			raw, err := base64.StdEncoding.DecodeString(r.Raw)
			if err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			rec, err := audit.DecodeRecord(raw)
			if err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			recs = append(recs, rec)
			after = rec.Seq
		}
		if len(out.Records) == 0 || after >= head.Seq {
			break
		}
	}
	if err := audit.Verify(recs, head); err != nil {
		return fmt.Errorf("audit log does not verify: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "audit log verified: %d records, head %d %x\n", len(recs), head.Seq, head.Hash)
	return nil
}
