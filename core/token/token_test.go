package token

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var key = bytes.Repeat([]byte{7}, KeyBytes)

func claims() Claims {
	return Claims{ID: "t1", Subject: "ops", Commands: []string{"/usr/bin/*", "echo"}, Dirs: []string{"/srv/app", "/tmp"},
		IssuedNs: 100, ExpiresNs: 1000}
}

func sign(t *testing.T, c Claims) string {
	t.Helper()
	tok, err := Sign(key, c)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

func TestVerifyRoundTrip(t *testing.T) {
	tok := sign(t, claims())
	c, err := Verify(key, tok, 500, nil)
	if err != nil || c.ID != "t1" || c.Subject != "ops" || len(c.Commands) != 2 || c.ExpiresNs != 1000 {
		t.Fatalf("verify: got %+v, %v; want the claims signed", c, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	tok := sign(t, claims())
	other := bytes.Repeat([]byte{8}, KeyBytes)
	forgedClaims := claims()
	forgedClaims.Commands = []string{"*"}
	// Claims swapped under the original signature.
	swapped := strings.SplitN(sign(t, forgedClaims), ".", 3)
	orig := strings.SplitN(tok, ".", 3)
	cases := []struct {
		name    string
		key     []byte
		tok     string
		nowNs   int64
		revoked func(string) bool
		want    error
	}{
		{"other key", other, tok, 500, nil, ErrForged},
		{"claims swapped", key, swapped[0] + "." + swapped[1] + "." + orig[2], 500, nil, ErrForged},
		{"flipped signature", key, tok[:len(tok)-2] + flip(tok[len(tok)-2:]), 500, nil, ErrForged},
		{"expired at the instant", key, tok, 1000, nil, ErrExpired},
		{"expired later", key, tok, 5000, nil, ErrExpired},
		{"revoked", key, tok, 500, func(id string) bool { return id == "t1" }, ErrRevoked},
		{"empty", key, "", 500, nil, ErrMalformed},
		{"no signature", key, "aspen1.abc", 500, nil, ErrMalformed},
		{"no prefix", key, "x" + tok, 500, nil, ErrMalformed},
		{"bad base64", key, "aspen1.!!.??", 500, nil, ErrMalformed},
		{"short signature", key, orig[0] + "." + orig[1] + ".AAAA", 500, nil, ErrMalformed},
		{"huge", key, "aspen1." + strings.Repeat("A", TokenBytesMax), 500, nil, ErrMalformed},
	}
	for _, tc := range cases {
		if _, err := Verify(tc.key, tc.tok, tc.nowNs, tc.revoked); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestSignRefusesBadClaims(t *testing.T) {
	bad := []func(*Claims){
		func(c *Claims) { c.ID = "" },
		func(c *Claims) { c.Subject = "" },
		func(c *Claims) { c.Commands = nil },
		func(c *Claims) { c.Dirs = nil },
		func(c *Claims) { c.Dirs = []string{"srv"} },
		func(c *Claims) { c.Dirs = []string{"/srv/../etc"} },
		func(c *Claims) { c.Commands = []string{"[bad"} },
		func(c *Claims) { c.ExpiresNs = c.IssuedNs },
	}
	for i, f := range bad {
		c := claims()
		f(&c)
		if _, err := Sign(key, c); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: got %v, want malformed", i, err)
		}
	}
	if _, err := Sign(key[:5], claims()); err == nil {
		t.Error("short key: signed, want refused")
	}
}

func TestAllows(t *testing.T) {
	c := claims()
	cases := []struct {
		argv0, dir string
		ok         bool
	}{
		{"/usr/bin/env", "/srv/app", true},
		{"echo", "/srv/app/sub/dir", true},
		{"/usr/bin/env", "/tmp", true},
		{"/usr/bin/env", "/srv/app2", false},          // string prefix, not below
		{"/usr/bin/env", "/srv/app/../../etc", false}, // escape via ..
		{"/usr/bin/env", "/srv", false},
		{"/usr/bin/env", "srv/app", false},
		{"/usr/bin/../../bin/sh", "/srv/app", false}, // a glob must not match ..
		{"/usr/bin/sub/x", "/srv/app", false},        // * stops at /
		{"/bin/sh", "/srv/app", false},
		{"", "/srv/app", false},
	}
	for _, tc := range cases {
		err := c.Allows(tc.argv0, tc.dir)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrScope)) {
			t.Errorf("allows(%q, %q): got %v, want ok=%v", tc.argv0, tc.dir, err, tc.ok)
		}
	}
	root := Claims{Commands: []string{"*"}, Dirs: []string{"/"}}
	if err := root.Allows("x", "/any/where"); err != nil {
		t.Errorf("root dir: got %v, want allowed", err)
	}
}

func TestRequestMAC(t *testing.T) {
	sig := RequestMAC(key, "/v1/aspen/token/revoke", []byte(`{"ID":"t1"}`))
	if !CheckRequestMAC(key, "/v1/aspen/token/revoke", []byte(`{"ID":"t1"}`), sig) {
		t.Fatal("own signature refused")
	}
	if CheckRequestMAC(key, "/v1/aspen/token/revoke", []byte(`{"ID":"t2"}`), sig) ||
		CheckRequestMAC(key, "/v1/aspen/audit/append", []byte(`{"ID":"t1"}`), sig) {
		t.Fatal("signature accepted for another body or path")
	}
}
