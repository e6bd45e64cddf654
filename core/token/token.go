// Package token holds the pure parts of capability tokens: the claims a token
// carries, how a cluster key signs and verifies them, and the scope check
// that decides whether a token lets its holder run a command in a directory.
// Nothing here reads a clock, a file or the network: the caller passes the
// key, the time and what is revoked.
//
// A token is "aspen1." + base64url(claims) + "." + base64url(HMAC-SHA256(key,
// "aspen1." + base64url(claims))). The claims are a canonical binary encoding
// (varints and length-prefixed strings, in a fixed order), so one set of
// claims has one encoding and one signature.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/aspen-db/aspen/core/module"
)

// KeyBytes is the size of a cluster key.
const KeyBytes = 32

// Bounds on what one token may name, so a token stays small enough for a
// header and a replicated record.
const (
	IDBytesMax       = 64
	SubjectBytesMax  = 128
	PatternsMax      = 32
	DirsMax          = 32
	PatternBytesMax  = 256
	TokenBytesMax    = 8 << 10
	claimsVersion    = 1
	tokenPrefix      = "aspen1."
	signatureBytes   = sha256.Size
	scopePathMaxElem = 4096
)

// Errors a verification or scope check returns; each comes wrapped with
// detail.
var (
	ErrMalformed = errors.New("malformed token")
	ErrForged    = errors.New("token signature does not match the cluster key")
	ErrExpired   = errors.New("token expired")
	ErrRevoked   = errors.New("token revoked")
	ErrScope     = errors.New("token does not allow this")
)

// Claims is what a token says about its holder.
type Claims struct {
	ID        string   // unique; what revocation and the audit log name
	Subject   string   // who holds it (a person, a service)
	Commands  []string // patterns argv[0] must match (path.Match syntax, "*" stops at "/")
	Dirs      []string // absolute directories the command may run in, with everything below them
	IssuedNs  int64    // unix nanoseconds
	ExpiresNs int64    // unix nanoseconds; the token is refused from this instant on
}

// Check refuses claims no token may carry.
func (c Claims) Check() error {
	switch {
	case c.ID == "" || len(c.ID) > IDBytesMax:
		return fmt.Errorf("%w: id must be 1 to %d bytes", ErrMalformed, IDBytesMax)
	case c.Subject == "" || len(c.Subject) > SubjectBytesMax:
		return fmt.Errorf("%w: subject must be 1 to %d bytes", ErrMalformed, SubjectBytesMax)
	case len(c.Commands) == 0 || len(c.Commands) > PatternsMax:
		return fmt.Errorf("%w: 1 to %d command patterns, got %d", ErrMalformed, PatternsMax, len(c.Commands))
	case len(c.Dirs) == 0 || len(c.Dirs) > DirsMax:
		return fmt.Errorf("%w: 1 to %d directories, got %d", ErrMalformed, DirsMax, len(c.Dirs))
	case c.ExpiresNs <= c.IssuedNs:
		return fmt.Errorf("%w: expiry %d not after issue %d", ErrMalformed, c.ExpiresNs, c.IssuedNs)
	}
	for _, p := range c.Commands {
		if _, err := path.Match(p, ""); err != nil || p == "" || len(p) > PatternBytesMax {
			return fmt.Errorf("%w: command pattern %q", ErrMalformed, p)
		}
	}
	for _, d := range c.Dirs {
		if !path.IsAbs(d) || path.Clean(d) != d || len(d) > PatternBytesMax {
			return fmt.Errorf("%w: directory %q is not a clean absolute path", ErrMalformed, d)
		}
	}
	return nil
}

// Encode is the canonical encoding of the claims.
func (c Claims) Encode() []byte {
	b := []byte{claimsVersion}
	b = module.AppendBytes(b, []byte(c.ID))
	b = module.AppendBytes(b, []byte(c.Subject))
	b = appendStrings(b, c.Commands)
	b = appendStrings(b, c.Dirs)
	b = binary.AppendVarint(b, c.IssuedNs)
	return binary.AppendVarint(b, c.ExpiresNs)
}

// DecodeClaims reads what Encode wrote, and checks it.
func DecodeClaims(b []byte) (Claims, error) {
	if len(b) == 0 || b[0] != claimsVersion {
		return Claims{}, fmt.Errorf("%w: claims version", ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	c := Claims{ID: r.String(), Subject: r.String(), Commands: readStrings(r), Dirs: readStrings(r)}
	c.IssuedNs, c.ExpiresNs = r.Varint(), r.Varint()
	if err := r.Done("claims"); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return c, c.Check()
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = module.AppendBytes(b, []byte(s))
	}
	return b
}

func readStrings(r *module.Reader) []string {
	var out []string
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		out = append(out, r.String())
	}
	return out
}

// Sign returns the token for claims under key.
func Sign(key []byte, c Claims) (string, error) {
	if len(key) != KeyBytes {
		return "", fmt.Errorf("cluster key is %d bytes, want %d", len(key), KeyBytes)
	}
	if err := c.Check(); err != nil {
		return "", err
	}
	signed := tokenPrefix + base64.RawURLEncoding.EncodeToString(c.Encode())
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac(key, signed)), nil
}

func mac(key []byte, s string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(s))
	return h.Sum(nil)
}

// Parse reads a token's claims without checking its signature: for
// displaying a token, never for trusting one.
func Parse(tok string) (Claims, error) {
	claims, _, _, err := split(tok)
	if err != nil {
		return Claims{}, err
	}
	return DecodeClaims(claims)
}

func split(tok string) (claims, sig []byte, signed string, err error) {
	if len(tok) > TokenBytesMax || !strings.HasPrefix(tok, tokenPrefix) {
		return nil, nil, "", fmt.Errorf("%w: want %s<claims>.<signature> of at most %d bytes", ErrMalformed, tokenPrefix, TokenBytesMax)
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot < len(tokenPrefix) {
		return nil, nil, "", fmt.Errorf("%w: no signature", ErrMalformed)
	}
	signed = tok[:dot]
	if claims, err = base64.RawURLEncoding.DecodeString(signed[len(tokenPrefix):]); err != nil {
		return nil, nil, "", fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if sig, err = base64.RawURLEncoding.DecodeString(tok[dot+1:]); err != nil || len(sig) != signatureBytes {
		return nil, nil, "", fmt.Errorf("%w: signature", ErrMalformed)
	}
	return claims, sig, signed, nil
}

// Verify checks a token's signature under key, then its expiry at nowNs,
// then whether revoked (may be nil) names it, and returns its claims. The
// signature is checked before anything is decoded, so a forged token is
// refused without its claims being read.
func Verify(key []byte, tok string, nowNs int64, revoked func(id string) bool) (Claims, error) {
	if len(key) != KeyBytes {
		return Claims{}, fmt.Errorf("cluster key is %d bytes, want %d", len(key), KeyBytes)
	}
	raw, sig, signed, err := split(tok)
	if err != nil {
		return Claims{}, err
	}
	if !hmac.Equal(sig, mac(key, signed)) {
		return Claims{}, ErrForged
	}
	c, err := DecodeClaims(raw)
	if err != nil {
		return Claims{}, err
	}
	if nowNs >= c.ExpiresNs {
		return Claims{}, fmt.Errorf("%w: token %s expired %d ns ago", ErrExpired, c.ID, nowNs-c.ExpiresNs)
	}
	if revoked != nil && revoked(c.ID) {
		return Claims{}, fmt.Errorf("%w: token %s", ErrRevoked, c.ID)
	}
	return c, nil
}

// Allows reports whether the claims let argv0 run in dir: argv0 must match
// one command pattern and be clean (no "." or ".." elements, which a glob
// could otherwise match), and dir must be a clean absolute path equal to or
// below one allowed directory, compared element by element ("/srv/app2" is
// not below "/srv/app"). Symbolic links are the executor's to resolve
// (runtime/worker/shell resolves them before its own check).
func (c Claims) Allows(argv0, dir string) error {
	if argv0 == "" || path.Clean(argv0) != argv0 || hasDotDot(argv0) {
		return fmt.Errorf("%w: command %q is not a clean path", ErrScope, argv0)
	}
	matched := false
	for _, p := range c.Commands {
		if ok, _ := path.Match(p, argv0); ok {
			matched = true
			break
		}
	}
	if !matched {
		return fmt.Errorf("%w: command %q matches none of %q", ErrScope, argv0, c.Commands)
	}
	if !path.IsAbs(dir) || path.Clean(dir) != dir || len(dir) > scopePathMaxElem {
		return fmt.Errorf("%w: directory %q is not a clean absolute path", ErrScope, dir)
	}
	for _, root := range c.Dirs {
		if Within(dir, root) {
			return nil
		}
	}
	return fmt.Errorf("%w: directory %q is in none of %q", ErrScope, dir, c.Dirs)
}

// Within reports whether the clean absolute path p is root or below it.
func Within(p, root string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." {
			return true
		}
	}
	return false
}

// RequestMAC signs an operator's request to a node (revoke, audit append):
// HMAC-SHA256 under the cluster key of the path and body, domain-separated
// from tokens, hex-free bytes for the caller to encode.
func RequestMAC(key []byte, urlPath string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("aspen-request\x00"))
	h.Write([]byte(urlPath))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// CheckRequestMAC reports whether sig signs urlPath and body under key.
func CheckRequestMAC(key []byte, urlPath string, body, sig []byte) bool {
	return len(key) == KeyBytes && hmac.Equal(sig, RequestMAC(key, urlPath, body))
}
