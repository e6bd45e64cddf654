package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
)

// Shell jobs and schedule templates: the only way from the HTTP API to
// exec, and it needs a capability token. The node verifies the token
// (signature under the cluster key, expiry on its clock, revocation on the
// replicated registry, scope against argv[0] and the directory), then
// stores a grant instead of the token (token.Grant): the command, the
// claims and a MAC under the key. The worker checks the grant again before
// it runs anything, with its own clock and a fresh look at revocations.

// ShellCommand is what a shell job (or each tick of a shell schedule) runs,
// and the token that allows it. The token is checked here and never stored.
type ShellCommand struct {
	Argv             []string          `json:",omitempty"` // argv[0] an absolute path; no shell unless it is argv[0] and the worker allows it
	Dir              string            `json:",omitempty"` // working directory; empty: the token's first directory
	Env              map[string]string `json:",omitempty"` // variables for the command; the worker's allowlist decides which it gets
	CommandTimeoutMs int64             `json:",omitempty"` // the command's timeout; 0: the worker's default
	Capability       string            `json:",omitempty"` // a token from `aspen token create`
}

func (c ShellCommand) empty() bool {
	return len(c.Argv) == 0 && c.Dir == "" && len(c.Env) == 0 && c.CommandTimeoutMs == 0 && c.Capability == ""
}

// errShellJob refuses a shell job without a capability token, with 403.
var errShellJob = errors.New("shell jobs need a capability token (Capability): see aspen token create")

// shellJobType is the job type the shell worker serves.
const shellJobType = "shell"

// isShell matches the shell type loosely, though workers match exactly:
// treating "Shell" or " shell" as shell (and refusing it) costs nothing, a
// miss could cost a host.
func isShell(typ string) bool { return strings.EqualFold(strings.TrimSpace(typ), shellJobType) }

// hookJobPrefix opens the types of hook deliveries' jobs (core/hooks).
const hookJobPrefix = "hook."

// isHookType matches hook delivery types as loosely as isShell matches shell.
func isHookType(typ string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(typ)), hookJobPrefix)
}

// shellError is a refusal with the status to answer it with.
type shellError struct {
	status int
	err    error
}

func (e *shellError) Error() string { return e.err.Error() }
func (e *shellError) Unwrap() error { return e.err }

func shellRefusal(status int, format string, args ...any) error {
	return &shellError{status: status, err: fmt.Errorf(format, args...)}
}

// shellPayload checks a job's type, payload and shell command together and
// returns the payload to store: for a shell job the grant, else payload as
// given. A refusal is a *shellError.
func (s *Server) shellPayload(ctx context.Context, typ, payload string, c ShellCommand) ([]byte, error) {
	switch {
	case isHookType(typ):
		return nil, shellRefusal(http.StatusForbidden, "job type %q: %s* jobs are made by hooks only (a client's would carry a hook's sealed secret to a URL of its choosing)", typ, hookJobPrefix)
	case !isShell(typ) && !c.empty():
		return nil, shellRefusal(http.StatusBadRequest, "Argv, Dir, Env, CommandTimeoutMs and Capability are for jobs of type %s, not %q", shellJobType, typ)
	case !isShell(typ):
		return []byte(payload), nil
	case typ != shellJobType:
		return nil, shellRefusal(http.StatusBadRequest, "job type %q: spell it %s", typ, shellJobType)
	case payload != "":
		return nil, shellRefusal(http.StatusBadRequest, "a shell job's payload is made from Argv, Dir and Env: leave Payload empty")
	case c.Capability == "":
		return nil, &shellError{status: http.StatusForbidden, err: errShellJob}
	case s.key == nil:
		return nil, shellRefusal(http.StatusUnauthorized, "this node has no cluster key (set token_key_file): shell jobs are refused")
	}
	claims, err := token.Verify(s.key, c.Capability, time.Now().UnixNano(), nil)
	if err != nil {
		return nil, &shellError{status: tokenErrorStatus(err), err: err}
	}
	if err := s.checkNotRevoked(ctx, claims.ID); err != nil {
		return nil, err
	}
	dir := c.Dir
	if dir == "" {
		dir = claims.Dirs[0]
	}
	g, err := token.NewGrant(s.key, claims, c.Argv, dir, c.Env, c.CommandTimeoutMs)
	if err != nil {
		return nil, &shellError{status: tokenErrorStatus(err), err: err}
	}
	return g.Marshal(), nil
}

// checkNotRevoked asks the replicated registry, after a ReadIndex, whether
// id is revoked; a token it never heard of is not. A registry it cannot
// reach refuses the job (503): an unchecked token runs nothing.
func (s *Server) checkNotRevoked(ctx context.Context, id string) error {
	v, err := s.Query(ctx, tokens.Get(id))
	switch {
	case errors.Is(err, &module.Error{Outcome: module.NotFound}):
		return nil
	case err != nil:
		return fmt.Errorf("check token %s against revocations: %w", id, err)
	}
	if a, ok := v.(tokens.Answer); ok && len(a.Entries) == 1 && a.Entries[0].Revoked {
		return &shellError{status: http.StatusForbidden, err: fmt.Errorf("%w: token %s", token.ErrRevoked, id)}
	}
	return nil
}

// grantOrRefuse sets *grant to the payload shellPayload makes for a shell
// job (nil for any other), or answers its refusal and reports false.
func (s *Server) grantOrRefuse(w http.ResponseWriter, r *http.Request, typ, payload string, c ShellCommand, grant *[]byte) bool {
	p, err := s.shellPayload(r.Context(), typ, payload, c)
	var se *shellError
	switch {
	case errors.As(err, &se):
		writeError(w, se.status, se.Error())
		return false
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return false
	}
	if isShell(typ) {
		*grant = p
	}
	return true
}
