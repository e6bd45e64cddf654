package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

const (
	// requestTimeout outlasts the server's own deadline for a call (10 s), so
	// that the server's message, not a client timeout, explains a failure.
	requestTimeout = 30 * time.Second

	// valueReadBytesMax bounds a value read from stdin or a file; the
	// server's limit is lower and it says so, this only keeps a runaway pipe
	// out of memory.
	valueReadBytesMax = 64 << 20
)

// kvEntry is Consul's KVPair as the server writes it.
type kvEntry struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte // base64 in JSON
	CreateIndex uint64
	ModifyIndex uint64
}

func kvCommand() *cli.Command {
	return &cli.Command{
		Name:  "kv",
		Usage: "read, write and watch keys on a running cluster",
		Subcommands: []*cli.Command{
			kvLeaf("get", "print a key's value", "KEY", runKVGet,
				&cli.BoolFlag{Name: "stale", Usage: "answer from this node's state, without confirming it is current"},
				&cli.BoolFlag{Name: "json", Usage: "print the Consul entry (value in base64, create and modify index)"}),
			kvLeaf("put", "write a key", "KEY VALUE  (VALUE - reads stdin, @FILE reads FILE)", runKVPut,
				&cli.Int64Flag{Name: "lease", Usage: "attach the key to lease ID (aspen lease grant): it is deleted when the lease ends"}),
			kvLeaf("delete", "delete a key", "KEY", runKVDelete,
				&cli.BoolFlag{Name: "recurse", Usage: "delete every key that starts with KEY"}),
			kvLeaf("list", "list keys and values under a prefix", "[PREFIX]", runKVList,
				&cli.BoolFlag{Name: "keys-only", Usage: "print keys only"},
				&cli.StringFlag{Name: "separator", Usage: "with --keys-only, fold keys at the first S after the prefix"}),
			kvLeaf("cas", "write a key only if its modify index is N (0: only if absent)", "KEY VALUE", runKVCAS,
				&cli.Uint64Flag{Name: "index", Usage: "the modify index the key must have (0: the key must not exist); required"}),
			kvLeaf("watch", "print changes to a key or prefix until Ctrl-C", "KEY | --prefix P", runKVWatch,
				&cli.StringFlag{Name: "prefix", Usage: "watch every key starting with P"},
				&cli.Uint64Flag{Name: "from", Usage: "start at this revision (default: the next one)"}),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// kvLeaf builds one client subcommand; every one takes --addr.
func kvLeaf(name, usage, argsUsage string, action cli.ActionFunc, flags ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: argsUsage,
		Flags:        append([]cli.Flag{addrFlag()}, flags...),
		OnUsageError: onUsageError,
		Action:       action,
	}
}

func runKVGet(c *cli.Context) error {
	key, err := oneKey(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	q := url.Values{}
	if c.Bool("stale") {
		q.Set("stale", "")
	}
	p, err := kvPath(key)
	if err != nil {
		return err
	}
	var entries []kvEntry
	if _, err := kvClient(c).getJSON(ctx, p, q, &entries); err != nil {
		return kvFailure(key, err)
	}
	if len(entries) == 0 {
		return failure("key not found: %s", key)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, entries[0])
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s\n", entries[0].Value)
	return err
}

func runKVPut(c *cli.Context) error {
	args, err := exactArgs(c, "KEY", "VALUE")
	if err != nil {
		return err
	}
	value, err := readValue(c, args[1])
	if err != nil {
		return err
	}
	var q url.Values
	if c.IsSet("lease") {
		if c.Int64("lease") <= 0 {
			return usageError("--lease must be a positive lease id, got %d", c.Int64("lease"))
		}
		q = url.Values{"lease": {strconv.FormatInt(c.Int64("lease"), 10)}}
	}
	rev, _, err := kvWrite(c, args[0], value, q)
	if err != nil {
		return kvFailure(args[0], err)
	}
	fmt.Fprintf(c.App.Writer, "put %s at revision %s\n", args[0], rev)
	return nil
}

func runKVCAS(c *cli.Context) error {
	args, err := exactArgs(c, "KEY", "VALUE")
	if err != nil {
		return err
	}
	// Checked here, not with Required: urfave/cli reports a missing required
	// flag on a subcommand as an unknown command.
	if !c.IsSet("index") {
		return usageError("%s needs --index N: the modify index KEY must have (0: KEY must not exist)", cmdName(c))
	}
	value, err := readValue(c, args[1])
	if err != nil {
		return err
	}
	index := c.Uint64("index")
	rev, ok, err := kvWrite(c, args[0], value, url.Values{"cas": {strconv.FormatUint(index, 10)}})
	switch {
	case err != nil:
		return kvFailure(args[0], err)
	case !ok && index == 0:
		return failure("cas failed: %s already exists; nothing written", args[0])
	case !ok:
		return failure("cas failed: %s does not have modify index %d (changed or deleted since); nothing written", args[0], index)
	}
	fmt.Fprintf(c.App.Writer, "cas succeeded: put %s at revision %s\n", args[0], rev)
	return nil
}

// kvWrite PUTs value and returns the revision the server reports and
// whether the write happened (false only when a ?cas compare failed).
func kvWrite(c *cli.Context, key string, value []byte, q url.Values) (rev string, ok bool, err error) {
	p, err := kvPath(key)
	if err != nil {
		return "", false, err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	hdr, err := kvClient(c).sendJSON(ctx, http.MethodPut, p, q, value, &ok)
	if err != nil {
		return "", false, err
	}
	return hdr.Get("X-Consul-Index"), ok, nil
}

func runKVDelete(c *cli.Context) error {
	args, err := exactArgs(c, "KEY")
	if err != nil {
		return err
	}
	key := args[0]
	q := url.Values{}
	if c.Bool("recurse") {
		q.Set("recurse", "")
	} else if key == "" {
		return usageError("KEY must not be empty (use --recurse \"\" to delete every key)")
	}
	p, err := kvPath(key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var ok bool
	if _, err := kvClient(c).sendJSON(ctx, http.MethodDelete, p, q, nil, &ok); err != nil {
		return kvFailure(key, err)
	}
	if c.Bool("recurse") {
		fmt.Fprintf(c.App.Writer, "deleted every key under %q\n", key)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "deleted %s\n", key)
	return nil
}

func runKVList(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageError("%s wants at most one PREFIX, got %q%s", cmdName(c), c.Args().Slice(), flagHint(c.Args().Slice()))
	}
	if c.IsSet("separator") && !c.Bool("keys-only") {
		return usageError("--separator only applies with --keys-only")
	}
	prefix := c.Args().First()
	p, err := kvPath(prefix)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	if c.Bool("keys-only") {
		return listKeys(ctx, c, prefix, p)
	}
	var entries []kvEntry
	_, err = kvClient(c).getJSON(ctx, p, url.Values{"recurse": {""}}, &entries)
	if err != nil && !errors.Is(err, errNotFound) {
		return kvFailure(prefix, err)
	}
	for _, e := range entries {
		fmt.Fprintf(c.App.Writer, "%s\t%s\n", e.Key, displayValue(e.Value))
	}
	return nil
}

func listKeys(ctx context.Context, c *cli.Context, prefix, p string) error {
	q := url.Values{"keys": {""}}
	if sep := c.String("separator"); sep != "" {
		q.Set("separator", sep)
	}
	var keys []string
	_, err := kvClient(c).getJSON(ctx, p, q, &keys)
	if err != nil && !errors.Is(err, errNotFound) {
		return kvFailure(prefix, err)
	}
	for _, k := range keys {
		fmt.Fprintln(c.App.Writer, k)
	}
	return nil
}

func runKVWatch(c *cli.Context) error {
	q, err := watchQuery(c)
	if err != nil {
		return err
	}
	// Ctrl-C is how a watch ends, so it is a clean exit, not a kill.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl := kvClient(c)
	resp, err := cl.do(ctx, http.MethodGet, "/v1/aspen/watch", q, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return failure("watch: %v", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev server.WatchEvent
		err := dec.Decode(&ev)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			return failure("watch ended: %s closed the stream (node stopping?)", cl.addr)
		case err != nil:
			return failure("watch: reading from %s: %v", cl.addr, err)
		case ev.Error != "":
			return failure("watch ended: %s", ev.Error)
		}
		fmt.Fprintln(c.App.Writer, formatEvent(ev))
	}
}

// watchQuery reads exactly one of KEY or --prefix, and --from.
func watchQuery(c *cli.Context) (url.Values, error) {
	q := url.Values{}
	switch {
	case c.IsSet("prefix") && c.NArg() == 0:
		q.Set("prefix", c.String("prefix"))
	case !c.IsSet("prefix") && c.NArg() == 1 && c.Args().First() != "":
		q.Set("key", c.Args().First())
	default:
		return nil, usageError("%s wants one KEY or --prefix P (not both), got %q%s", cmdName(c), c.Args().Slice(), flagHint(c.Args().Slice()))
	}
	if c.IsSet("from") {
		q.Set("from", strconv.FormatUint(c.Uint64("from"), 10))
	}
	return q, nil
}

func formatEvent(ev server.WatchEvent) string {
	switch {
	case ev.Type == "delete" && ev.Expired:
		return fmt.Sprintf("%d delete %s (lease expired)", ev.Revision, ev.Key)
	case ev.Type == "delete":
		return fmt.Sprintf("%d delete %s", ev.Revision, ev.Key)
	}
	return fmt.Sprintf("%d %s %s %s", ev.Revision, ev.Type, ev.Key, displayValue(ev.Value))
}

func kvClient(c *cli.Context) *client {
	return newClient(c.String("addr"), &http.Client{})
}

// kvPath is the key's URL path. Keys with empty, "." or ".." segments are
// refused: the server's router redirects such paths to their cleaned form,
// so they would silently name another key.
func kvPath(key string) (string, error) {
	p := "/v1/kv/" + key
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") {
		clean += "/"
	}
	if clean != p {
		return "", usageError("key %q has an empty, . or .. path segment, which the HTTP API cannot address", key)
	}
	return p, nil
}

// kvFailure words a failed call for the command line; errors that already
// carry an exit status keep it.
func kvFailure(key string, err error) error {
	var exit cli.ExitCoder
	if errors.As(err, &exit) {
		return err
	}
	if errors.Is(err, errNotFound) {
		return failure("key not found: %s", key)
	}
	return failure("%v", err)
}

func oneKey(c *cli.Context) (string, error) {
	args, err := exactArgs(c, "KEY")
	if err != nil {
		return "", err
	}
	if args[0] == "" {
		return "", usageError("KEY must not be empty")
	}
	return args[0], nil
}

// exactArgs returns the positional arguments when they match names one for
// one.
func exactArgs(c *cli.Context, names ...string) ([]string, error) {
	got := c.Args().Slice()
	if len(got) == len(names) {
		return got, nil
	}
	return nil, usageError("%s wants %s, got %q%s", cmdName(c), strings.Join(names, " "), got, flagHint(got))
}

// flagHint explains an argument that looks like a flag: the parser stops at
// the first argument, so flags written after one arrive as arguments.
func flagHint(args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "-") && a != "-" {
			return " (flags go before arguments)"
		}
	}
	return ""
}

// cmdName is the command as typed after "aspen", as in "kv get".
func cmdName(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}

// readValue returns arg, stdin when arg is "-", or the file named after an
// "@", as Consul's CLI reads them.
func readValue(c *cli.Context, arg string) ([]byte, error) {
	var src io.Reader
	from := "stdin"
	switch {
	case arg == "-":
		src = c.App.Reader
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, usageError("read value: %v", err)
		}
		defer f.Close()
		src, from = f, arg[1:]
	default:
		return []byte(arg), nil
	}
	value, err := io.ReadAll(io.LimitReader(src, valueReadBytesMax+1))
	if err != nil {
		return nil, failure("read value from %s: %v", from, err)
	}
	if len(value) > valueReadBytesMax {
		return nil, usageError("value in %s exceeds %d bytes", from, valueReadBytesMax)
	}
	return value, nil
}

// displayValue prints a value as is when it reads as one line of text, and
// quoted otherwise, so that one entry stays one line.
func displayValue(v []byte) string {
	s := string(v)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
