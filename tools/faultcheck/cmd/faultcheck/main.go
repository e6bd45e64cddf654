// Command faultcheck drives concurrent clients against a running Aspen
// cluster and checks what they saw: linearizability per key, durability of
// acknowledged writes, and index agreement. Inject faults (kill, restart,
// partition) from outside while it runs.
//
//	faultcheck --addrs 127.0.0.1:8501,127.0.0.1:8502,127.0.0.1:8503 --duration 30s --html out.html
//
// It exits 0 when every check passed, 1 when one failed, 2 on bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/aspen-db/aspen/tools/faultcheck"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	cfg          faultcheck.Config
	addrs        string
	html         string
	historyPath  string
	checkTimeout time.Duration
	verbose      bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("faultcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addrs, "addrs", "", "comma-separated HTTP addresses (host:port) of the cluster's nodes")
	fs.IntVar(&o.cfg.Clients, "clients", 16, "concurrent clients")
	fs.IntVar(&o.cfg.Keys, "keys", 8, "number of keys")
	fs.DurationVar(&o.cfg.Duration, "duration", 10*time.Second, "how long to run the load")
	fs.DurationVar(&o.cfg.OpTimeout, "timeout", 2*time.Second, "per-operation client timeout; a write that runs out of it has an unknown outcome")
	fs.Uint64Var(&o.cfg.Seed, "seed", 0, "seed for the operation mix (0: random)")
	fs.StringVar(&o.html, "html", "", "on a linearizability failure, write porcupine's visualization to this file")
	fs.StringVar(&o.historyPath, "history", "", "write the recorded history as JSON to this file")
	fs.DurationVar(&o.checkTimeout, "check-timeout", time.Minute, "time limit for each key's linearizability check")
	fs.BoolVar(&o.verbose, "v", false, "log unknown outcomes as they happen")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, a := range strings.Split(o.addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.cfg.Addrs = append(o.cfg.Addrs, a)
		}
	}
	if len(o.cfg.Addrs) == 0 {
		return o, fmt.Errorf("--addrs is required")
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintf(stderr, "faultcheck: %v\n", err)
		}
		return 2
	}
	if o.verbose {
		o.cfg.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	// Ctrl-C ends the load early; the history so far is still checked.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	h, err := faultcheck.Run(ctx, o.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "faultcheck: %v\n", err)
		return 2
	}
	if o.historyPath != "" {
		if err := h.WriteJSON(o.historyPath); err != nil {
			fmt.Fprintf(stderr, "faultcheck: %v\n", err)
		}
	}
	return report(h, o, stdout, stderr)
}

func report(h *faultcheck.History, o options, stdout, stderr io.Writer) int {
	rep := faultcheck.Check(h, o.checkTimeout)
	fmt.Fprintln(stdout, rep)
	err := rep.Err()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stdout, "%v\n", err)
	if o.html != "" && len(rep.Illegal) > 0 {
		if herr := rep.WriteHTML(o.html, o.checkTimeout); herr != nil {
			fmt.Fprintf(stderr, "faultcheck: %v\n", herr)
		} else {
			fmt.Fprintf(stdout, "visualization: %s\n", o.html)
		}
	}
	return 1
}
