package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/runtime/worker/shell"
)

// Config is a worker's configuration: the file `aspen worker --config`
// reads, and the [worker] table of a node's config.
type Config struct {
	Enabled     bool         `toml:"enabled"`     // a node's pool runs only when set; a standalone worker ignores it
	Name        string       `toml:"name"`        // the lease holder's name; default: the host name and process id
	Addrs       []string     `toml:"addrs"`       // standalone: the nodes to talk to (--addr adds to them)
	KeyFile     string       `toml:"key_file"`    // standalone: the cluster key (a node uses its own)
	Types       []string     `toml:"types"`       // job types served; default: every type this worker has a handler for
	Concurrency int          `toml:"concurrency"` // jobs run at once; default 4
	PollMs      int64        `toml:"poll_ms"`     // the wait between lease attempts when no job is due; default 500
	Shell       shell.Config `toml:"shell"`       // the shell handler's policy: commands, directories, environment, limits
}

// Defaults, each with its reason.
const (
	concurrencyDefault = 4   // a few commands at once; operators size it to the machine
	pollMsDefault      = 500 // a new job waits half a second at most on an idle worker
)

// ShellType is the job type of shell commands.
const ShellType = "shell"

// HandlerTypes are the job types this worker has handlers for, and serves
// unless told to serve fewer: shell commands and the deliveries of http
// and shell hooks. (A job hook's deliveries are jobs of the hook's own
// type, for workers of their own.)
var HandlerTypes = []string{ShellType, HookHTTPType, HookShellType}

// LoadConfig reads a worker config file, refusing unknown keys (a
// misspelt allowlist would otherwise silently allow nothing, or worse).
func LoadConfig(path string) (Config, error) {
	var cfg Config
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return cfg, fmt.Errorf("worker config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return cfg, fmt.Errorf("worker config %s: unknown keys %v", path, und)
	}
	return cfg, nil
}

// Running is a started pool.
type Running struct {
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// Stop stops the pool's jobs (SIGTERM, grace, SIGKILL for commands), sends
// what outcomes it can, and waits for it.
func (r *Running) Stop() {
	r.once.Do(r.stop)
	<-r.done
}

// Start checks cfg and starts a pool that talks to the nodes at addrs;
// key is the cluster key (needed to serve shell jobs). reg, if not nil,
// gets the pool's metrics.
func Start(cfg Config, addrs []string, key []byte, log *slog.Logger, reg prometheus.Registerer) (*Running, error) {
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = concurrencyDefault
	}
	if cfg.PollMs == 0 {
		cfg.PollMs = pollMsDefault
	}
	if len(cfg.Types) == 0 {
		cfg.Types = HandlerTypes
	}
	client, err := NewClient(addrs, key)
	if err != nil {
		return nil, err
	}
	var m *Metrics
	if reg != nil {
		m = NewMetrics(reg)
	}
	handlers, err := newHandlers(cfg, key, client, log, m)
	if err != nil {
		return nil, err
	}
	pool, err := NewPool(cfg.Name, cfg.Concurrency, time.Duration(cfg.PollMs)*time.Millisecond, client, handlers, log.With("worker", cfg.Name), m)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		pool.Run(ctx)
	}()
	return r, nil
}

// newHandlers makes a handler for each type cfg serves. The shell and
// hook.shell handlers share one executor, policy and audit trail.
func newHandlers(cfg Config, key []byte, client *Client, log *slog.Logger, m *Metrics) (map[string]Handler, error) {
	var sh *ShellHandler
	shellHandler := func() (*ShellHandler, error) {
		if sh != nil {
			return sh, nil
		}
		var err error
		sh, err = NewShellHandler(cfg.Name, key, cfg.Shell, client, jobs.DefaultLimits().OutputBytesMax, log, m)
		return sh, err
	}
	handlers := map[string]Handler{}
	for _, t := range cfg.Types {
		var h Handler
		var err error
		switch t {
		case ShellType:
			h, err = shellHandler()
		case HookShellType:
			var s *ShellHandler
			if s, err = shellHandler(); err == nil {
				h = NewHookShellHandler(s)
			}
		case HookHTTPType:
			h, err = NewHookHTTPHandler(key, log, m)
		default:
			return nil, fmt.Errorf("worker: no handler for job type %q (this worker serves %q)", t, HandlerTypes)
		}
		if err != nil {
			return nil, err
		}
		handlers[t] = h
	}
	return handlers, nil
}
