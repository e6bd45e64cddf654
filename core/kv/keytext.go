package kv

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrKeyText is what CheckKeyText wraps; test for it with errors.Is.
var ErrKeyText = errors.New("kv: key must be UTF-8 text without NUL bytes")

// CheckKeyText refuses a key that a JSON answer cannot carry back unchanged:
// one holding a NUL byte, or bytes that are not UTF-8 (a listing would show
// them as U+FFFD, a name that reads and deletes nothing). APIs that speak
// JSON call it on every key or prefix a client names, so that a key can be
// read back and deleted by the name a listing shows.
//
// It is not part of Validate, and Apply never sees it: the log and stores
// may already hold such keys, and every replica must go on applying them.
func CheckKeyText(key []byte) error {
	if i := bytes.IndexByte(key, 0); i >= 0 {
		return fmt.Errorf("%w: NUL byte at offset %d", ErrKeyText, i)
	}
	for i := 0; i < len(key); {
		r, size := utf8.DecodeRune(key[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: byte 0x%02x at offset %d is not UTF-8", ErrKeyText, key[i], i)
		}
		i += size
	}
	return nil
}
