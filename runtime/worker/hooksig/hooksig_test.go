package hooksig

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// A signature made by Sign verifies; any change to the body, the
// timestamp or the secret, or a timestamp too old or too new, is refused.
func TestVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"Hook":"h","Revision":7}`)
	now := time.Unix(1_800_000_000, 0)
	ts := now.Unix()
	sig := Sign(secret, ts, body)
	tsh := strconv.FormatInt(ts, 10)
	cases := []struct {
		name    string
		secret  []byte
		ts, sig string
		body    []byte
		now     time.Time
		want    error
	}{
		{"as sent", secret, tsh, sig, body, now, nil},
		{"4 min later", secret, tsh, sig, body, now.Add(4 * time.Minute), nil},
		{"body changed", secret, tsh, sig, []byte(`{"Hook":"h","Revision":8}`), now, ErrMismatch},
		{"timestamp changed", secret, strconv.FormatInt(ts+1, 10), sig, body, now, ErrMismatch},
		{"other secret", []byte("other"), tsh, sig, body, now, ErrMismatch},
		{"replayed 6 min later", secret, tsh, sig, body, now.Add(6 * time.Minute), ErrStale},
		{"from the future", secret, tsh, sig, body, now.Add(-6 * time.Minute), ErrStale},
		{"no scheme", secret, tsh, sig[len(scheme):], body, now, ErrMalformed},
		{"not hex", secret, tsh, "sha256=zz", body, now, ErrMalformed},
		{"no timestamp", secret, "", sig, body, now, ErrMalformed},
	}
	for _, tc := range cases {
		err := Verify(tc.secret, tc.ts, tc.sig, tc.body, tc.now, ToleranceDefault)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The scheme is fixed: a known vector, so a receiver written in another
// language can check its own implementation against it.
func TestSignVector(t *testing.T) {
	got := Sign([]byte("key"), 1700000000, []byte("{}"))
	// printf '1700000000.{}' | openssl dgst -sha256 -hmac key
	const want = "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
