package worker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/runtime/server"
)

// HookShellType is the job type of shell hooks' deliveries.
const HookShellType = hooks.JobShell

// HookShellHandler runs the deliveries of shell hooks: the command a
// capability token allowed when the hook was created (the payload's
// grant), under every check and audit a shell job gets (ShellHandler),
// with the event as JSON on stdin and as ASPEN_HOOK_* variables.
//
// The variables bypass the worker's environment allowlist, by design and
// safely: the allowlist guards what a job's submitter may set, while these
// are set by the worker, under names fixed here (all ASPEN_HOOK_*, which
// the executor checks: no loader, shell or PATH variable can pass this
// way), with values taken from the delivery's event, the committed change.
// The values are data a hook's command must treat as untrusted input,
// exactly as the event on its stdin: whoever may write a key the hook
// matches chooses them.
type HookShellHandler struct {
	shell *ShellHandler
}

// NewHookShellHandler makes the handler on top of a shell handler, whose
// policy, key and audit it shares.
func NewHookShellHandler(sh *ShellHandler) *HookShellHandler { return &HookShellHandler{shell: sh} }

// The variables a shell hook's command gets.
const (
	envHookName     = "ASPEN_HOOK_NAME"
	envHookKind     = "ASPEN_HOOK_KIND" // put, delete, expire, resync, trigger
	envHookKey      = "ASPEN_HOOK_KEY"  // set when the key is text without NUL
	envHookKeyB64   = "ASPEN_HOOK_KEY_BASE64"
	envHookRevision = "ASPEN_HOOK_REVISION"
	envHookIdemKey  = "ASPEN_HOOK_IDEMPOTENCY_KEY"
	envHookValueB64 = "ASPEN_HOOK_VALUE_BASE64" // the value, when inline in the event
	envHookValueSHA = "ASPEN_HOOK_VALUE_SHA256" // its digest, when it is not
	envHookSize     = "ASPEN_HOOK_VALUE_SIZE"
	envHookTimeNs   = "ASPEN_HOOK_TIME_UNIX_NANO"
	envHookFrom     = "ASPEN_HOOK_FROM_REVISION" // resync
	envHookTo       = "ASPEN_HOOK_TO_REVISION"   // resync
)

// Run decodes the delivery and runs its grant with the event fed in.
func (h *HookShellHandler) Run(ctx context.Context, job server.JobInfo) Outcome {
	p, err := decodeHookPayload(job.Payload)
	if err == nil && len(p.Grant) == 0 {
		err = fmt.Errorf("%w: a shell hook's without a grant", errBadDelivery)
	}
	if err != nil {
		return h.shell.refuse(ctx, job, token.Grant{}, time.Now(), err)
	}
	event, err := json.Marshal(p.Event)
	if err != nil { // strings, ints and bytes: cannot fail
		return Outcome{Reason: "encode the event: " + err.Error()}
	}
	return h.shell.runGrant(ctx, job, p.Grant, feed{stdin: append(event, '\n'), env: hookEnv(p.Event)})
}

// hookEnv is the event as ASPEN_HOOK_* variables.
func hookEnv(e hooks.Event) map[string]string {
	env := map[string]string{
		envHookName:     e.Hook,
		envHookKind:     e.Kind,
		envHookRevision: strconv.FormatInt(e.Revision, 10),
		envHookIdemKey:  e.IdempotencyKey,
		envHookTimeNs:   strconv.FormatInt(e.TimeUnixNano, 10),
	}
	if e.Key != "" {
		env[envHookKeyB64] = base64.StdEncoding.EncodeToString([]byte(e.Key))
		if !strings.ContainsRune(e.Key, 0) {
			env[envHookKey] = e.Key
		}
	}
	switch {
	case e.Value != nil:
		env[envHookValueB64] = base64.StdEncoding.EncodeToString(e.Value)
		env[envHookSize] = strconv.Itoa(len(e.Value))
	case e.ValueSHA256 != "":
		env[envHookValueSHA] = e.ValueSHA256
		env[envHookSize] = strconv.FormatInt(e.ValueSize, 10)
	case e.Kind == hooks.KindPut || e.Kind == hooks.KindTrigger: // an empty value (omitted from the JSON)
		env[envHookValueB64], env[envHookSize] = "", "0"
	}
	if e.Kind == hooks.KindResync {
		env[envHookFrom], env[envHookTo] = strconv.FormatInt(e.FromRevision, 10), strconv.FormatInt(e.ToRevision, 10)
	}
	return env
}

// errBadDelivery refuses a payload that is no hook delivery.
var errBadDelivery = errors.New("malformed hook delivery")

// decodeHookPayload reads a delivery job's payload strictly: a field the
// worker does not know is a payload it cannot act on as meant.
func decodeHookPayload(payload string) (hooks.Payload, error) {
	var p hooks.Payload
	dec := json.NewDecoder(bytes.NewReader([]byte(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: %v", errBadDelivery, err)
	}
	return p, nil
}
