package token

import (
	"bytes"
	"errors"
	"testing"
)

func grant(t *testing.T) Grant {
	t.Helper()
	g, err := NewGrant(key, claims(), []string{"/usr/bin/env", "-0"}, "/srv/app/logs", map[string]string{"B": "2", "A": "1"}, 5000)
	if err != nil {
		t.Fatalf("new grant: %v", err)
	}
	return g
}

func TestGrantRoundTrip(t *testing.T) {
	g, err := CheckGrant(key, grant(t).Marshal(), 500, nil)
	if err != nil || g.Argv[0] != "/usr/bin/env" || g.Dir != "/srv/app/logs" || g.Env["B"] != "2" || g.TimeoutMs != 5000 || g.Claims.ID != "t1" {
		t.Fatalf("check grant: %+v, %v; want the grant made", g, err)
	}
}

func TestNewGrantChecksScope(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		dir  string
		want error
	}{
		{[]string{"/bin/sh", "-c", "id"}, "/srv/app", ErrScope},  // command outside the patterns
		{[]string{"/usr/bin/env"}, "/srv/application", ErrScope}, // a sibling of an allowed dir
		{[]string{"/usr/bin/../../bin/sh"}, "/srv/app", ErrScope},
		{nil, "/srv/app", ErrMalformed},
	} {
		if _, err := NewGrant(key, claims(), tc.argv, tc.dir, nil, 0); !errors.Is(err, tc.want) {
			t.Errorf("grant %q in %s: %v, want %v", tc.argv, tc.dir, err, tc.want)
		}
	}
}

// A grant altered in any field, or made under another key, is refused
// before its claims count for anything.
func TestCheckGrantRefuses(t *testing.T) {
	alter := func(f func(*Grant)) []byte {
		g := grant(t)
		f(&g)
		return g.Marshal()
	}
	other, err := NewGrant(bytes.Repeat([]byte{9}, KeyBytes), claims(), []string{"/usr/bin/env"}, "/tmp", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		nowNs   int64
		revoked func(string) bool
		want    error
	}{
		{"argv changed", alter(func(g *Grant) { g.Argv = []string{"/usr/bin/rm", "-rf", "/srv/app"} }), 500, nil, ErrForged},
		{"dir changed", alter(func(g *Grant) { g.Dir = "/tmp" }), 500, nil, ErrForged},
		{"env added", alter(func(g *Grant) { g.Env["LD_PRELOAD"] = "/tmp/x.so" }), 500, nil, ErrForged},
		{"scope widened", alter(func(g *Grant) { g.Claims.Commands = []string{"*"} }), 500, nil, ErrForged},
		{"expiry moved", alter(func(g *Grant) { g.Claims.ExpiresNs = 1 << 62 }), 5000, nil, ErrForged},
		{"no MAC", alter(func(g *Grant) { g.MAC = "" }), 500, nil, ErrForged},
		{"other key", other.Marshal(), 500, nil, ErrForged},
		{"expired", grant(t).Marshal(), 1000, nil, ErrExpired},
		{"revoked", grant(t).Marshal(), 500, func(id string) bool { return id == "t1" }, ErrRevoked},
		{"not JSON", []byte("/bin/sh -c id"), 500, nil, ErrMalformed},
		{"unknown field", []byte(`{"Argv":["/usr/bin/env"],"Shell":true}`), 500, nil, ErrMalformed},
	} {
		if _, err := CheckGrant(key, tc.payload, tc.nowNs, tc.revoked); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The payload never holds the token's signature: a reader of the job
// cannot lift a token from it.
func TestGrantHoldsNoToken(t *testing.T) {
	tok := sign(t, claims())
	if bytes.Contains(grant(t).Marshal(), []byte(tok[len(tok)-20:])) {
		t.Fatal("the grant holds the token's signature")
	}
}

func TestSealOpen(t *testing.T) {
	sealed, err := Seal(key, []byte("hook secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hook secret")) {
		t.Fatal("the sealed value shows the secret")
	}
	if got, err := Open(key, sealed); err != nil || string(got) != "hook secret" {
		t.Fatalf("open: %q, %v", got, err)
	}
	again, _ := Seal(key, []byte("hook secret"))
	if !bytes.Equal(again, sealed) {
		t.Fatal("sealing is not a pure function of key and secret")
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	if _, err := Open(key, flipped); err == nil {
		t.Fatal("an altered sealed value opened")
	}
	if _, err := Open(bytes.Repeat([]byte{9}, KeyBytes), sealed); err == nil {
		t.Fatal("a value sealed under another key opened")
	}
}
