package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
	"github.com/urfave/cli/v2"
)

const (
	// topicPublishBatchMax is how many stdin lines one publish carries: the
	// server takes up to 1000, but 100 keeps a request small and quick.
	topicPublishBatchMax = 100
	// topicLineBytesMax bounds one stdin line: the module's message cap
	// (256 KiB) with room for a longer line to be refused by the server.
	topicLineBytesMax = 1 << 20
	// topicFollowWaitMs is how long each long poll of read --follow waits:
	// well under the server's bound and the client's request timeout.
	topicFollowWaitMs = 25_000
	// topicReadMaxDefault is what read prints unless told otherwise.
	topicReadMaxDefault = 100
)

func topicCommand() *cli.Command {
	return &cli.Command{
		Name:  "topic",
		Usage: "create, inspect and delete topics; publish messages and read them",
		Subcommands: []*cli.Command{
			kvLeaf("create", "create a topic of --partitions partitions", "NAME", runTopicCreate,
				&cli.IntFlag{Name: "partitions", Value: 1, Usage: "how many partitions (1 to the server's bound)"},
				&cli.Int64Flag{Name: "retain-messages", Usage: "keep at most this many messages per partition (default: the server's)"},
				&cli.Int64Flag{Name: "retain-bytes", Usage: "keep at most this many bytes of keys, values and headers per partition (default: the server's)"},
				&cli.DurationFlag{Name: "retain-age", Usage: "drop messages older than this (default: no age limit)"}),
			kvLeaf("list", "list topics with their partitions and messages published", "", runTopicList,
				&cli.IntFlag{Name: "limit", Value: 1000, Usage: "print at most this many topics"}),
			kvLeaf("describe", "print a topic's retention and each partition's offsets", "NAME", runTopicDescribe),
			kvLeaf("delete", "delete a topic and its messages", "NAME", runTopicDelete),
			kvLeaf("publish", "publish each VALUE, or each line of stdin when none is given, in order", "TOPIC [VALUE...]", runTopicPublish,
				&cli.StringFlag{Name: "key", Usage: "the messages' key: it chooses the partition (default: none, round-robin)"},
				&cli.IntFlag{Name: "partition", Value: -1, Usage: "publish to this partition (default: by key, or round-robin)"}),
			kvLeaf("read", "print a partition's messages as OFFSET KEY VALUE lines (--json: one JSON object a line)", "TOPIC", runTopicRead,
				&cli.IntFlag{Name: "partition", Usage: "the partition to read"},
				&cli.StringFlag{Name: "from", Value: "beginning", Usage: "beginning, end, an OFFSET, or a TIME: RFC 3339 or @ and Unix milliseconds"},
				&cli.IntFlag{Name: "max", Value: topicReadMaxDefault, Usage: "print at most this many messages (without --follow)"},
				&cli.BoolFlag{Name: "follow", Usage: "keep reading new messages as they are published, until Ctrl-C"},
				&cli.BoolFlag{Name: "json", Usage: "print each message as a JSON object"}),
		},
		HideHelpCommand: true,
		Action:          unknownSubcommand,
	}
}

// topicCall POSTs req to a topic endpoint and decodes the answer into v.
func topicCall(ctx context.Context, c *cli.Context, op string, req, v any) error {
	return kvClient(c).postAspen(ctx, "topic/"+op, req, v)
}

func runTopicCreate(c *cli.Context) error {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return err
	}
	age := c.Duration("retain-age")
	if age < 0 || age%time.Millisecond != 0 {
		return usageError("--retain-age must be a non-negative whole number of milliseconds (such as 24h), got %v", age)
	}
	req := server.TopicCreate{Name: args[0], Partitions: c.Int("partitions"), RetainMessages: c.Int64("retain-messages"),
		RetainBytes: c.Int64("retain-bytes"), RetainAgeMs: age.Milliseconds()}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var info server.TopicInfo
	if err := topicCall(ctx, c, "create", req, &info); err != nil {
		return failure("create: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "created topic %s (%d partitions)\n", displayValue([]byte(info.Name)), info.Partitions)
	return nil
}

func runTopicList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	limit := c.Int("limit")
	if limit < 1 {
		return usageError("--limit must be at least 1, got %d", limit)
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var page server.TopicList
	if err := topicCall(ctx, c, "list", server.TopicListRequest{Limit: limit}, &page); err != nil {
		return failure("list: %v", err)
	}
	if page.Next != "" {
		fmt.Fprintf(c.App.ErrWriter, "aspen: more topics than --limit %d; showing the first by name\n", limit)
	}
	if len(page.Topics) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tPUBLISHED\tRETAINED")
	for _, t := range page.Topics {
		held := uint64(0)
		for _, b := range t.Bounds {
			held += b.End - b.First
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", displayValue([]byte(t.Name)), t.Partitions, t.Published, held)
	}
	return tw.Flush()
}

// topicByName runs op (get, delete) on the topic named by the one argument.
func topicByName(c *cli.Context, op string) (server.TopicInfo, error) {
	args, err := exactArgs(c, "NAME")
	if err != nil {
		return server.TopicInfo{}, err
	}
	ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
	defer cancel()
	var info server.TopicInfo
	if err := topicCall(ctx, c, op, server.TopicName{Name: args[0]}, &info); err != nil {
		return info, failure("%s: %v", op, err)
	}
	return info, nil
}

func runTopicDescribe(c *cli.Context) error {
	t, err := topicByName(c, "get")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	age := "none"
	if t.RetainAgeMs > 0 {
		age = (time.Duration(t.RetainAgeMs) * time.Millisecond).String()
	}
	fmt.Fprintf(tw, "topic\t%s\n", displayValue([]byte(t.Name)))
	fmt.Fprintf(tw, "partitions\t%d\n", t.Partitions)
	fmt.Fprintf(tw, "retention\t%d messages, %d bytes per partition; age %s\n", t.RetainMessages, t.RetainBytes, age)
	fmt.Fprintf(tw, "created\t%s\n", time.UnixMilli(t.CreatedMs).UTC().Format("2006-01-02T15:04:05.000Z"))
	fmt.Fprintf(tw, "published\t%d\n", t.Published)
	tw.Flush()
	tw = tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tFIRST\tEND\tBYTES")
	for _, b := range t.Bounds {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\n", b.Partition, b.First, b.End, b.Bytes)
	}
	return tw.Flush()
}

func runTopicDelete(c *cli.Context) error {
	t, err := topicByName(c, "delete")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "deleted topic %s\n", displayValue([]byte(t.Name)))
	return nil
}

func runTopicPublish(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usageError("topic publish wants TOPIC [VALUE...], got none")
	}
	tmpl := server.TopicMessageIn{}
	if c.IsSet("key") {
		k := c.String("key")
		tmpl.Key = &k
	}
	if p := c.Int("partition"); c.IsSet("partition") {
		if p < 0 {
			return usageError("--partition must not be negative, got %d", p)
		}
		tmpl.Partition = &p
	}
	next := valuesFrom(args[1:], c.App.Reader)
	w := newWriter(kvClient(c)) // a batch retried after a lost answer is placed once
	published, last := 0, server.TopicPublished{}
	for {
		batch, err := next()
		if err != nil {
			return failure("read stdin: %v", err)
		}
		if len(batch) == 0 {
			break
		}
		msgs := make([]server.TopicMessageIn, len(batch))
		for i, v := range batch {
			msgs[i] = tmpl
			msgs[i].Value = v
		}
		ctx, cancel := context.WithTimeout(c.Context, requestTimeout)
		err = w.post(ctx, "topic/publish", server.TopicPublish{Topic: args[0], Messages: msgs}, &last)
		cancel()
		if err != nil {
			return failure("publish (after %d messages published): %v", published, err)
		}
		published += len(batch)
	}
	switch {
	case published == 1:
		p := last.Messages[0]
		fmt.Fprintf(c.App.Writer, "published to partition %d at offset %d\n", p.Partition, p.Offset)
	default:
		fmt.Fprintf(c.App.Writer, "published %d messages\n", published)
	}
	return nil
}

// valuesFrom returns the values given, in one batch, or else stdin's lines
// in batches of topicPublishBatchMax; an empty batch is the end.
func valuesFrom(args []string, stdin io.Reader) func() ([]string, error) {
	if len(args) > 0 {
		return func() ([]string, error) {
			batch := args[:min(len(args), topicPublishBatchMax)]
			args = args[len(batch):]
			return batch, nil
		}
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), topicLineBytesMax)
	return func() ([]string, error) {
		var batch []string
		for len(batch) < topicPublishBatchMax && sc.Scan() {
			batch = append(batch, sc.Text())
		}
		return batch, sc.Err()
	}
}

func runTopicRead(c *cli.Context) error {
	args, err := exactArgs(c, "TOPIC")
	if err != nil {
		return err
	}
	req := server.TopicReadRequest{Topic: args[0], Partition: c.Int("partition"), From: c.String("from"), Max: c.Int("max")}
	switch {
	case req.Partition < 0:
		return usageError("--partition must not be negative, got %d", req.Partition)
	case req.Max < 1:
		return usageError("--max must be at least 1, got %d", req.Max)
	case !validTopicFrom(req.From):
		return usageError("--from must be beginning, end, an OFFSET, or a TIME (RFC 3339, or @ and Unix milliseconds), got %q", req.From)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	follow := c.Bool("follow")
	if follow {
		req.WaitMs = topicFollowWaitMs
	}
	for {
		callCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		var page server.TopicMessages
		err := topicCall(callCtx, c, "read", req, &page)
		cancel()
		switch {
		case follow && ctx.Err() != nil:
			return nil // Ctrl-C
		case err != nil:
			return failure("read: %v", err)
		}
		if err := printTopicMessages(c, page.Messages); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		req.From = strconv.FormatUint(page.Next, 10)
	}
}

func printTopicMessages(c *cli.Context, msgs []server.TopicMessage) error {
	w := bufio.NewWriter(c.App.Writer)
	for _, m := range msgs {
		if c.Bool("json") {
			b, _ := json.Marshal(m)
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		key := "-"
		switch {
		case m.Key != nil:
			key = displayValue([]byte(*m.Key))
		case m.KeyBase64 != "":
			key = "base64:" + m.KeyBase64
		}
		value := displayValue([]byte(m.Value))
		if m.ValueBase64 != "" {
			value = "base64:" + m.ValueBase64
		}
		fmt.Fprintf(w, "%d %s %s\n", m.Offset, key, value)
	}
	if err := w.Flush(); err != nil && !errors.Is(err, os.ErrClosed) {
		return failure("write: %v", err)
	}
	return nil
}

// validTopicFrom checks --from as the server reads From, so a typo is a
// usage error before any request.
func validTopicFrom(f string) bool {
	switch {
	case f == "beginning" || f == "end":
		return true
	case len(f) > 1 && f[0] == '@':
		_, err := strconv.ParseInt(f[1:], 10, 64)
		return err == nil
	}
	if _, err := strconv.ParseUint(f, 10, 64); err == nil {
		return true
	}
	_, err := time.Parse(time.RFC3339Nano, f)
	return err == nil
}
