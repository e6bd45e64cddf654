package server

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
)

// startKeyedCluster starts n nodes sharing one cluster key, as an operator
// sets them up (aspen token keygen, then token_key_file on each), and
// returns the key.
func startKeyedCluster(t *testing.T, n int) (*cluster, []byte) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	key, err := ReadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return startClusterWith(t, n, func(cfg *Config) { cfg.TokenKeyFile = keyFile }), key
}

func signClaims(t *testing.T, key []byte, id string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok, err := token.Sign(key, token.Claims{ID: id, Subject: "ops", Commands: []string{"/bin/*", "/usr/bin/*"},
		Dirs: []string{"/tmp", "/srv"}, IssuedNs: now.Add(-2 * time.Hour).UnixNano(), ExpiresNs: now.Add(ttl).UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A shell job is accepted only with a valid token that allows its command
// and directory; what is stored is a grant the worker can check, never the
// token. Every refusal leaves no job behind.
func TestShellJobNeedsValidToken(t *testing.T) {
	c, key := startKeyedCluster(t, 3)
	good := signClaims(t, key, "t-good", time.Hour)
	revoked := signClaims(t, key, "t-revoked", time.Hour)
	until := time.Now().Add(time.Hour).UnixNano()
	sig := hex.EncodeToString(token.RequestMAC(key, "/v1/aspen/token/revoke", tokens.Revoke("t-revoked", until).Body))
	if code, _, body := do(t, "POST", c.url(0, "/v1/aspen/token/revoke"), jsonBody(t, TokenRequest{ID: "t-revoked",
		ExpiresNs: until, Signature: sig})); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	submit := func(cap string, argv []string, dir string) string {
		return jsonBody(t, JobRequest{Type: "shell", ShellCommand: ShellCommand{Argv: argv, Dir: dir, Capability: cap}})
	}
	for _, tc := range []struct {
		body   string
		code   int
		inBody string
	}{
		{submit(signClaims(t, make([]byte, token.KeyBytes), "t-forged", time.Hour), []string{"/bin/true"}, ""), 401, "signature does not match"},
		{submit(signClaims(t, key, "t-expired", -time.Minute), []string{"/bin/true"}, ""), 403, "expired"},
		{submit(revoked, []string{"/bin/true"}, ""), 403, "revoked"},
		{submit(good, []string{"/sbin/reboot"}, ""), 403, "matches none of"},
		{submit(good, []string{"/bin/true"}, "/etc"), 403, "is in none of"},
		{submit(good, []string{"/bin/../sbin/reboot"}, ""), 403, "not a clean path"},
		{submit(good, nil, ""), 400, "empty argv"},
		{submit("aspen1.nope", []string{"/bin/true"}, ""), 400, "malformed token"},
	} {
		if code, _, body := do(t, "POST", c.url(1, "/v1/aspen/job/submit"), tc.body); code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("submit %.120s: got %d %s, want %d with %q", tc.body, code, body, tc.code, tc.inBody)
		}
	}
	if states := c.jobStatesOf(0); len(states) != 0 {
		t.Fatalf("jobs after refusals: %v, want none", states)
	}

	j := c.jobOK(2, "submit", submit(good, []string{"/bin/echo", "hi"}, ""))
	got := c.jobOK(0, "get", fmt.Sprintf(`{"ID": %d}`, j.ID))
	if strings.Contains(got.Payload, strings.Split(good, ".")[2]) {
		t.Fatal("the job's payload holds the token's signature")
	}
	g, err := token.CheckGrant(key, []byte(got.Payload), time.Now().UnixNano(), nil)
	if err != nil || g.Argv[1] != "hi" || g.Dir != "/tmp" || g.Claims.ID != "t-good" {
		t.Fatalf("stored payload %s: %+v, %v; want a grant for /bin/echo hi in /tmp (the token's first dir) under t-good", got.Payload, g, err)
	}

	// A schedule's template is checked the same way, once, at add.
	add := func(name, cap string) (int, string) {
		code, _, body := do(t, "POST", c.url(0, "/v1/aspen/schedule/add"), jsonBody(t, ScheduleRequest{Name: name, Every: "1h",
			Type: "shell", ShellCommand: ShellCommand{Argv: []string{"/usr/bin/date"}, Dir: "/srv", Capability: cap}}))
		return code, body
	}
	if code, body := add("bad", revoked); code != http.StatusForbidden {
		t.Errorf("schedule add with a revoked token: %d %s, want 403", code, body)
	}
	code, body := add("clock", good)
	if code != 200 {
		t.Fatalf("schedule add: %d %s", code, body)
	}
	var info ScheduleInfo
	c.scheduleOK(0, "get", `{"Name": "clock"}`, &info)
	if _, err := token.CheckGrant(key, []byte(info.Payload), time.Now().UnixNano(), nil); err != nil {
		t.Fatalf("schedule template payload %s: %v, want a grant", info.Payload, err)
	}
}
