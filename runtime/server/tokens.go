package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
)

// The token and audit API. Nothing here signs a token: tokens are signed
// where the cluster key is, by `aspen token create`, so an HTTP client
// without the key cannot obtain one. Writes need proof of the key:
// register takes a token the key signed (verified here, then only its
// claims go into the log, never the signature); revoke and audit append
// carry Signature, hex HMAC-SHA256 under the key of the URL path and the
// module command's body (token.RequestMAC). A node without a key refuses
// all three with 401. Reads (token list, audit list) are open, like every
// other read of the HTTP API, and hold no secret.

// keyFileName is the cluster key's name in a data dir when the config names none.
const keyFileName = "token.key"

// GenerateKeyFile writes a new random cluster key to path, readable by its
// owner only; it refuses to replace a file.
func GenerateKeyFile(path string) error {
	key := make([]byte, token.KeyBytes)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	return errors.Join(err, f.Sync(), f.Close())
}

// ReadKeyFile reads a cluster key, refusing a file others may read.
func ReadKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster key %s has mode %v: want it readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != token.KeyBytes {
		return nil, fmt.Errorf("cluster key %s: want %d hex-encoded bytes", path, token.KeyBytes)
	}
	return key, nil
}

// loadKey finds this node's cluster key: the configured file, else the
// data dir's. A node that bootstraps a cluster of one alone creates the
// data dir's key; every other node must be given the cluster's key (aspen
// token keygen, then the same file to each node), since a key made here
// would differ from its peers'. No key is not an error: the token and audit
// writes are then refused.
func loadKey(cfg Config) ([]byte, error) {
	path := cfg.TokenKeyFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, keyFileName)
		_, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && !cfg.Join && len(cfg.Cluster) <= 1:
			if err := GenerateKeyFile(path); err != nil {
				return nil, err
			}
		case errors.Is(err, os.ErrNotExist):
			return nil, nil
		}
	}
	return ReadKeyFile(path)
}

// TokenRequest is the body of token register and revoke.
type TokenRequest struct {
	Token     string `json:",omitempty"` // register: the signed token
	ID        string `json:",omitempty"` // revoke
	ExpiresNs int64  `json:",omitempty"` // revoke: the token's expiry, if it was never registered
	Signature string `json:",omitempty"` // revoke: hex token.RequestMAC of the path and the command body
}

// TokenInfo is one token as list and register show it: never a signature.
type TokenInfo struct {
	ID        string
	Subject   string
	Commands  []string
	Dirs      []string
	IssuedNs  int64
	ExpiresNs int64
	Revoked   bool
}

// TokenList answers list.
type TokenList struct{ Tokens []TokenInfo }

// AuditAppend is the body of audit append.
type AuditAppend struct {
	Exec      audit.Exec
	Signature string // hex token.RequestMAC of the path and the command body
}

// AuditRecord is one record as list shows it: its fields, and Raw, its
// canonical encoding (base64), which `aspen audit verify` checks itself.
type AuditRecord struct {
	Seq        uint64
	Kind       string
	AppliedNs  int64
	Exec       *audit.Exec `json:",omitempty"`
	PrunedSeq  uint64      `json:",omitempty"`
	Hash, Prev string
	Raw        string
}

// AuditList answers list.
type AuditList struct {
	Records  []AuditRecord
	HeadSeq  uint64
	HeadHash string
}

func (s *Server) tokenRoutes(route func(pattern, name string, h http.HandlerFunc)) {
	route("/v1/aspen/token/register", "aspen_token_register", s.postOnly(s.tokenRegister))
	route("/v1/aspen/token/revoke", "aspen_token_revoke", s.postOnly(s.tokenRevoke))
	route("/v1/aspen/token/list", "aspen_token_list", s.tokenList)
	route("/v1/aspen/audit/append", "aspen_audit_append", s.postOnly(s.auditAppend))
	route("/v1/aspen/audit/list", "aspen_audit_list", s.auditList)
}

func (s *Server) postOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, "POST")
			return
		}
		h(w, r)
	}
}

// signed refuses, with 401, a request that does not prove the key.
func (s *Server) signed(w http.ResponseWriter, r *http.Request, sigHex string, body []byte) bool {
	if s.key == nil {
		writeError(w, http.StatusUnauthorized, "this node has no cluster key (set token_key_file): token and audit writes are refused")
		return false
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || !token.CheckRequestMAC(s.key, r.URL.Path, body, sig) {
		writeError(w, http.StatusUnauthorized, "Signature does not prove the cluster key")
		return false
	}
	return true
}

func (s *Server) tokenRegister(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.key == nil {
		writeError(w, http.StatusUnauthorized, "this node has no cluster key (set token_key_file): tokens cannot be verified")
		return
	}
	// The node's clock: the request is judged now, here; apply refuses a
	// token already past its expiry on replicated time too.
	c, err := token.Verify(s.key, req.Token, time.Now().UnixNano(), nil)
	if err != nil {
		writeError(w, tokenErrorStatus(err), err.Error())
		return
	}
	s.tokenCall(w, r, tokens.Register(c), true)
}

// tokenErrorStatus maps a verification failure onto a status code.
func tokenErrorStatus(err error) int {
	switch {
	case errors.Is(err, token.ErrForged):
		return http.StatusUnauthorized
	case errors.Is(err, token.ErrExpired), errors.Is(err, token.ErrRevoked), errors.Is(err, token.ErrScope):
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cmd := tokens.Revoke(req.ID, req.ExpiresNs)
	if s.signed(w, r, req.Signature, cmd.Body) {
		s.tokenCall(w, r, cmd, true)
	}
}

func (s *Server) tokenList(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	if id := r.URL.Query().Get("id"); id != "" {
		s.tokenCall(w, r, tokens.Get(id), false) // one token: what a worker asks before it runs a command
		return
	}
	s.tokenCall(w, r, tokens.List(), false)
}

func (s *Server) tokenCall(w http.ResponseWriter, r *http.Request, cmd module.Command, write bool) {
	v, err := s.callOrQuery(r, cmd, write)
	if err != nil {
		writeCallError(w, err)
		return
	}
	a, ok := v.(tokens.Answer)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("tokens: the replica answered %T", v))
		return
	}
	out := TokenList{Tokens: []TokenInfo{}}
	for _, e := range a.Entries {
		c := e.Claims
		out.Tokens = append(out.Tokens, TokenInfo{ID: c.ID, Subject: c.Subject, Commands: c.Commands, Dirs: c.Dirs,
			IssuedNs: c.IssuedNs, ExpiresNs: c.ExpiresNs, Revoked: e.Revoked})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) callOrQuery(r *http.Request, cmd module.Command, write bool) (any, error) {
	if write {
		return s.Call(r.Context(), cmd)
	}
	return s.Query(r.Context(), cmd)
}

func (s *Server) auditAppend(w http.ResponseWriter, r *http.Request) {
	var req AuditAppend
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cmd := audit.Append(req.Exec)
	if s.signed(w, r, req.Signature, cmd.Body) {
		s.auditCall(w, r, cmd, true)
	}
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	after, _, err := uintParam(r, "after")
	limit, _, err2 := uintParam(r, "limit")
	if err = errors.Join(err, err2); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.auditCall(w, r, audit.List(after, int(min(limit, audit.ListMax))), false)
}

func (s *Server) auditCall(w http.ResponseWriter, r *http.Request, cmd module.Command, write bool) {
	v, err := s.callOrQuery(r, cmd, write)
	if err != nil {
		writeCallError(w, err)
		return
	}
	a, ok := v.(audit.Answer)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("audit: the replica answered %T", v))
		return
	}
	out := AuditList{Records: []AuditRecord{}, HeadSeq: a.Head.Seq, HeadHash: hex.EncodeToString(a.Head.Hash[:])}
	for i := range a.Records {
		out.Records = append(out.Records, auditRecord(&a.Records[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func auditRecord(rec *audit.Record) AuditRecord {
	out := AuditRecord{Seq: rec.Seq, Kind: "exec", AppliedNs: rec.AppliedNs, Hash: hex.EncodeToString(rec.Hash[:]),
		Prev: hex.EncodeToString(rec.Prev[:]), Raw: base64.StdEncoding.EncodeToString(rec.Encode())}
	if rec.Kind == audit.KindCheckpoint {
		out.Kind, out.PrunedSeq = "checkpoint", rec.PrunedSeq
	} else {
		e := rec.Exec
		out.Exec = &e
	}
	return out
}

// tokenBodyBytesMax bounds a token or audit request: an audit record's
// command is at most 64 KiB, hex and JSON add to it.
const tokenBodyBytesMax = 256 << 10

// readJSON decodes one JSON object strictly: a misspelt field is an error,
// not an absent one.
func readJSON(r *http.Request, v any) error {
	return decodeStrict(r.Body, tokenBodyBytesMax, v)
}
