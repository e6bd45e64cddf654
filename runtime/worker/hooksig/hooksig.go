// Package hooksig signs and verifies the requests an http hook sends, in
// the scheme of Stripe's and GitHub's webhooks. Each delivery attempt is a
// POST of the event as JSON with these headers:
//
//	X-Aspen-Hook:            the hook's name
//	X-Aspen-Idempotency-Key: hook:revision:key, the same on every attempt
//	X-Aspen-Timestamp:       Unix seconds when the attempt was sent
//	X-Aspen-Signature:       sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where secret is the hook's secret as given at create, timestamp is the
// header's decimal text and body the request body byte for byte. A
// receiver recomputes the MAC over the raw body (before any JSON parsing),
// compares it in constant time, and refuses a timestamp further than a
// tolerance (ToleranceDefault) from its own clock: the MAC binds the
// timestamp, so a captured request cannot be replayed later. Within the
// tolerance a repeat is told apart by its idempotency key, which a
// receiver must use anyway: a delivery may arrive more than once.
package hooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderHook           = "X-Aspen-Hook"
	HeaderIdempotencyKey = "X-Aspen-Idempotency-Key"
	HeaderTimestamp      = "X-Aspen-Timestamp"
	HeaderSignature      = "X-Aspen-Signature"
	HeaderAttempt        = "X-Aspen-Attempt" // 1 for the first lease of the delivery's job
)

// scheme prefixes the signature's hex, naming its MAC.
const scheme = "sha256="

// ToleranceDefault is how far a timestamp may be from a receiver's clock:
// Stripe's default, wide enough for clocks that drift and a delivery that
// waited for a slow connection.
const ToleranceDefault = 5 * time.Minute

// Sign is the X-Aspen-Signature value for body sent at unix seconds ts.
func Sign(secret []byte, ts int64, body []byte) string {
	return scheme + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Refusals of Verify.
var (
	ErrMalformed = errors.New("hook signature: malformed header")
	ErrMismatch  = errors.New("hook signature: does not match the body")
	ErrStale     = errors.New("hook signature: timestamp outside the tolerance")
)

// Verify checks a delivery as a receiver must: the signature over the
// timestamp header and the raw body under secret, and the timestamp within
// tolerance of now.
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrMalformed, tsHeader)
	}
	hexSig, ok := strings.CutPrefix(sigHeader, scheme)
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return fmt.Errorf("%w: signature %q: want sha256=<hex>", ErrMalformed, sigHeader)
	}
	if !hmac.Equal(got, mac(secret, tsHeader, body)) {
		return ErrMismatch
	}
	if d := now.Sub(time.Unix(ts, 0)).Abs(); d > tolerance {
		return fmt.Errorf("%w: %v from this clock, at most %v", ErrStale, d.Round(time.Second), tolerance)
	}
	return nil
}
