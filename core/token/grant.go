package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aspen-db/aspen/core/module"
)

// A Grant is a shell job's payload: the command a token allowed, the token's
// claims (never its signature), and a MAC under the cluster key over both,
// made by the node that verified the token at submit. A worker holding the
// key checks the MAC, then the claims again (expiry, revocation, scope)
// before it runs anything.
//
// The token itself is not stored: job payloads are readable by any client
// of the API, and a token in one would let a reader submit commands of its
// own. A grant names one command only, and a node accepts a shell job only
// with a token, rebuilding the grant itself, so a grant copied out of a job
// opens nothing.
type Grant struct {
	Argv      []string
	Dir       string
	Env       map[string]string `json:",omitempty"`
	TimeoutMs int64             `json:",omitempty"` // the command's own timeout; 0: the worker's default
	Claims    Claims
	MAC       string // hex HMAC-SHA256 under the cluster key of the canonical encoding
}

// Bounds on a grant's command, so a payload stays within a job's.
const (
	GrantArgsMax     = 256
	GrantEnvMax      = 64
	GrantBytesMax    = 32 << 10
	grantDomain      = "aspen-grant\x00"
	grantVersionByte = 1
)

// NewGrant checks that c allows the command and signs the grant. The
// claims must already have been verified (Verify) by the caller.
func NewGrant(key []byte, c Claims, argv []string, dir string, env map[string]string, timeoutMs int64) (Grant, error) {
	g := Grant{Argv: argv, Dir: dir, Env: env, TimeoutMs: timeoutMs, Claims: c}
	if err := g.check(); err != nil {
		return Grant{}, err
	}
	if len(key) != KeyBytes {
		return Grant{}, fmt.Errorf("cluster key is %d bytes, want %d", len(key), KeyBytes)
	}
	g.MAC = hex.EncodeToString(g.mac(key))
	return g, nil
}

// check refuses a command the claims do not allow, or one too large.
func (g *Grant) check() error {
	switch {
	case len(g.Argv) == 0 || g.Argv[0] == "":
		return fmt.Errorf("%w: empty argv", ErrMalformed)
	case len(g.Argv) > GrantArgsMax:
		return fmt.Errorf("%w: %d arguments, at most %d", ErrMalformed, len(g.Argv), GrantArgsMax)
	case len(g.Env) > GrantEnvMax:
		return fmt.Errorf("%w: %d variables, at most %d", ErrMalformed, len(g.Env), GrantEnvMax)
	case g.TimeoutMs < 0:
		return fmt.Errorf("%w: negative timeout %d ms", ErrMalformed, g.TimeoutMs)
	}
	if n := len(g.encode()); n > GrantBytesMax {
		return fmt.Errorf("%w: command of %d bytes, at most %d", ErrMalformed, n, GrantBytesMax)
	}
	if err := g.Claims.Check(); err != nil {
		return err
	}
	return g.Claims.Allows(g.Argv[0], g.Dir)
}

// encode is the canonical encoding the MAC covers: the variables sorted by
// name, so one grant has one encoding whatever order a map gives.
func (g *Grant) encode() []byte {
	b := append([]byte(grantDomain), grantVersionByte)
	b = appendStrings(b, g.Argv)
	b = module.AppendBytes(b, []byte(g.Dir))
	names := make([]string, 0, len(g.Env))
	for k := range g.Env {
		names = append(names, k)
	}
	slices.Sort(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = module.AppendBytes(module.AppendBytes(b, []byte(k)), []byte(g.Env[k]))
	}
	b = binary.AppendVarint(b, g.TimeoutMs)
	return append(b, g.Claims.Encode()...)
}

func (g *Grant) mac(key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(g.encode())
	return h.Sum(nil)
}

// Marshal is the grant as a job payload (JSON, so that job reads show it).
func (g Grant) Marshal() []byte {
	b, err := json.Marshal(g)
	if err != nil {
		panic(fmt.Sprintf("token: marshal grant: %v", err)) // only strings, ints and maps of strings
	}
	return b
}

// CheckGrant reads a shell job's payload and checks it as a worker must
// before exec: the MAC under key (a node that held the key verified a
// token for exactly this command), then the claims at nowNs (the worker's
// clock) and revoked (may be nil), then the scope again. On a refusal the
// grant returned is what the payload said, untrusted: for the audit record
// of what was refused, never for running.
func CheckGrant(key, payload []byte, nowNs int64, revoked func(id string) bool) (Grant, error) {
	var g Grant
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return Grant{}, fmt.Errorf("%w: shell job payload is not a grant: %v", ErrMalformed, err)
	}
	sig, err := hex.DecodeString(g.MAC)
	switch {
	case err != nil || len(key) != KeyBytes || !hmac.Equal(sig, g.mac(key)):
		return g, fmt.Errorf("%w: the grant's MAC does not match the cluster key", ErrForged)
	case g.check() != nil:
		return g, g.check()
	case nowNs >= g.Claims.ExpiresNs:
		return g, fmt.Errorf("%w: token %s expired %d ns ago", ErrExpired, g.Claims.ID, nowNs-g.Claims.ExpiresNs)
	case revoked != nil && revoked(g.Claims.ID):
		return g, fmt.Errorf("%w: token %s", ErrRevoked, g.Claims.ID)
	}
	return g, nil
}
