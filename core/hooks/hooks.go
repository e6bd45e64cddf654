// Package hooks fires handlers on KV changes, exactly once per committed
// change. Matching happens in apply: the KV module hands every change it
// applies to the hooks module (kv.Observer) in the same apply, and a change
// that matches an enabled hook becomes a delivery in the same batch as the
// change, so a crash or failover can neither lose nor double it. A delivery
// runs as a job of the job queue (leases, fencing, backoff, dead letters),
// never inside apply; the job's idempotency key is "hook:revision:key".
//
// Each hook has a bounded backlog of deliveries not yet handed to the queue,
// a token bucket on replicated time, and a bound on deliveries in flight (1
// for an ordered hook: the next starts when the previous has finished or
// died). A hook whose backlog is full is lagging: it keeps the range of
// revisions it let pass instead of their deliveries, and once the backlog
// has room it enqueues one resync delivery naming that range. Nothing is
// dropped silently, and no write waits for a hook.
package hooks

import (
	"errors"
	"fmt"
	"strings"
)

// Event kinds a hook fires on (Def.Events; 0 means put and delete).
const (
	OnPut    uint8 = 1 << iota // a key was written
	OnDelete                   // a key was deleted by a client
	OnExpire                   // a key was deleted because its lease ended
	onAll    = OnPut | OnDelete | OnExpire
)

// Filters on puts (Def.Filter).
const (
	FilterAny     uint8 = iota // every put
	FilterCreated              // only puts that create the key
	FilterUpdated              // only puts to a key that existed
)

// Handler kinds.
const (
	HandlerHTTP  = "http"  // POST the event to a URL (job type JobHTTP)
	HandlerShell = "shell" // run a command with the event on stdin (job type JobShell)
	HandlerJob   = "job"   // enqueue a job of the handler's type with the event as payload
	HandlerTopic = "topic" // publish the event to a topic, in the change's own apply
)

// Job types of the deliveries of http and shell hooks; a job hook's
// deliveries are jobs of its own type.
const (
	JobHTTP  = "hook.http"
	JobShell = "hook.shell"
)

// Ordering modes.
const (
	Ordered  = "ordered"  // one delivery at a time, in revision order
	Parallel = "parallel" // up to Def.Parallel at once, started in revision order
)

// Handler says what a delivery does.
type Handler struct {
	Kind    string
	URL     string // http
	Secret  []byte // http: the signing key, sealed by the node under the cluster key; opaque here
	JobType string // job
	Topic   string // topic
	Grant   []byte // shell: the grant a node made from a capability token (token.Grant)
}

// Def is a hook as a client defines it.
type Def struct {
	Name     string
	Pattern  string // a prefix, or a glob: "*" one path segment, "**" any number
	Events   uint8  // OnPut | OnDelete | OnExpire; 0: put and delete
	Filter   uint8  // for puts
	Handler  Handler
	Disabled bool
	Mode     string // Ordered or Parallel
	Parallel int64  // Parallel: deliveries in flight at most
	// The deliveries' job: attempts, lease timeout, retry backoff.
	AttemptsMax   int64
	TimeoutNs     int64
	BackoffBaseNs int64
	BackoffMaxNs  int64
	// The token bucket: deliveries started per second at most (0: no
	// limit), and how many may start at once after a quiet spell.
	RatePerSec int64
	Burst      int64
}

// inFlight is the most deliveries a hook may have in the queue at once.
func (d *Def) inFlight() int {
	if d.Mode == Parallel {
		return int(d.Parallel)
	}
	return 1
}

// Limits bound the table and every hook.
type Limits struct {
	HooksMax        int   // hooks held
	NameBytesMax    int   // a hook's name
	PatternBytesMax int   // a hook's pattern
	URLBytesMax     int   // an http hook's URL
	HandlerBytesMax int   // a shell grant or a sealed secret
	BacklogMax      int   // deliveries a hook holds before it lags
	ParallelMax     int64 // deliveries in flight for one hook
	ValueInlineMax  int   // a value up to this size rides in its delivery; above, its digest
	RateMax         int64 // deliveries per second one hook may ask for
	ListMax         int   // hooks one list page holds
}

// DefaultLimits returns the limits a node uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{HooksMax: 256, NameBytesMax: 128, PatternBytesMax: 512, URLBytesMax: 2048, HandlerBytesMax: 32 << 10,
		BacklogMax: 1000, ParallelMax: 64, ValueInlineMax: 4 << 10, RateMax: 100_000, ListMax: 256}
}

// Expected refusals; the module maps them onto outcomes.
var (
	ErrNotFound = errors.New("hook not found")
	ErrExists   = errors.New("hook already exists")
	ErrFull     = errors.New("too many hooks")
	errInvalid  = errors.New("invalid hook")
)

// check refuses a definition no hook may have.
func (l Limits) check(d *Def) error {
	switch {
	case d.Name == "" || len(d.Name) > l.NameBytesMax || strings.ContainsAny(d.Name, ":/\x00"):
		return fmt.Errorf("%w: name must be 1 to %d bytes without ':', '/' or NUL, got %q", errInvalid, l.NameBytesMax, d.Name)
	case len(d.Pattern) > l.PatternBytesMax:
		return fmt.Errorf("%w: pattern of %d bytes, at most %d", errInvalid, len(d.Pattern), l.PatternBytesMax)
	case d.Events&^onAll != 0:
		return fmt.Errorf("%w: events %#x", errInvalid, d.Events)
	case d.Filter > FilterUpdated:
		return fmt.Errorf("%w: filter %d", errInvalid, d.Filter)
	case d.Mode != Ordered && d.Mode != Parallel:
		return fmt.Errorf("%w: mode %q: want ordered or parallel", errInvalid, d.Mode)
	case d.Mode == Parallel && (d.Parallel < 1 || d.Parallel > l.ParallelMax):
		return fmt.Errorf("%w: parallel %d: want 1 to %d", errInvalid, d.Parallel, l.ParallelMax)
	case d.Mode == Ordered && d.Parallel != 0:
		return fmt.Errorf("%w: parallel %d for an ordered hook", errInvalid, d.Parallel)
	case d.RatePerSec < 0 || d.RatePerSec > l.RateMax || d.Burst < 0 || d.Burst > l.RateMax:
		return fmt.Errorf("%w: rate %d/s burst %d: want 0 to %d", errInvalid, d.RatePerSec, d.Burst, l.RateMax)
	case d.RatePerSec > 0 && d.Burst < 1:
		return fmt.Errorf("%w: a rate needs a burst of at least 1", errInvalid)
	}
	if err := checkPattern(d.Pattern); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return l.checkHandler(&d.Handler)
}

func (l Limits) checkHandler(h *Handler) error {
	switch h.Kind {
	case HandlerHTTP:
		if !strings.HasPrefix(h.URL, "http://") && !strings.HasPrefix(h.URL, "https://") || len(h.URL) > l.URLBytesMax {
			return fmt.Errorf("%w: url %q: want http:// or https://, at most %d bytes", errInvalid, h.URL, l.URLBytesMax)
		}
		if len(h.Secret) == 0 || len(h.Secret) > l.HandlerBytesMax {
			return fmt.Errorf("%w: an http hook needs a secret to sign with", errInvalid)
		}
		if h.JobType != "" || len(h.Grant) != 0 {
			return fmt.Errorf("%w: an http handler takes a url and a secret only", errInvalid)
		}
	case HandlerShell:
		if len(h.Grant) == 0 || len(h.Grant) > l.HandlerBytesMax {
			return fmt.Errorf("%w: a shell hook needs a command allowed by a capability token", errInvalid)
		}
		if h.URL != "" || h.JobType != "" || len(h.Secret) != 0 {
			return fmt.Errorf("%w: a shell handler takes a command only", errInvalid)
		}
	case HandlerTopic:
		if h.Topic == "" || len(h.Topic) > l.NameBytesMax {
			return fmt.Errorf("%w: a topic hook needs a topic name of 1 to %d bytes", errInvalid, l.NameBytesMax)
		}
		if h.URL != "" || h.JobType != "" || len(h.Grant) != 0 || len(h.Secret) != 0 {
			return fmt.Errorf("%w: a topic handler takes a topic only", errInvalid)
		}
		return nil
	case HandlerJob:
		if h.JobType == "" || strings.EqualFold(strings.TrimSpace(h.JobType), "shell") || strings.HasPrefix(h.JobType, "hook.") {
			return fmt.Errorf("%w: job type %q: want a type of your own (not shell, not hook.*)", errInvalid, h.JobType)
		}
		if h.URL != "" || len(h.Grant) != 0 || len(h.Secret) != 0 {
			return fmt.Errorf("%w: a job handler takes a job type only", errInvalid)
		}
	default:
		return fmt.Errorf("%w: handler kind %q: want http, shell, job or topic", errInvalid, h.Kind)
	}
	if h.Topic != "" {
		return fmt.Errorf("%w: a topic is for topic handlers", errInvalid)
	}
	return nil
}

// matches reports whether the change fires the hook.
func (d *Def) matches(key []byte, kind uint8, created bool) bool {
	events := d.Events
	if events == 0 {
		events = OnPut | OnDelete
	}
	if events&kind == 0 {
		return false
	}
	if kind == OnPut && (d.Filter == FilterCreated && !created || d.Filter == FilterUpdated && created) {
		return false
	}
	return matchPattern(d.Pattern, key)
}
