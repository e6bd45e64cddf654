package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Seal encrypts a secret (an http hook's signing key) under the cluster
// key, so that it can sit in replicated state and job payloads, which every
// client can read, and be opened only where the key is (nodes, workers).
// AES-256-GCM under a key derived from the cluster key; the nonce is an
// HMAC of the secret (the same secret seals the same way, which leaks only
// equality), so sealing is a pure function and needs no randomness.
func Seal(key, secret []byte) ([]byte, error) {
	aead, err := sealer(key)
	if err != nil {
		return nil, err
	}
	nonce := derive(key, "aspen-seal-nonce", secret)[:aead.NonceSize()]
	return aead.Seal(append([]byte{sealVersion}, nonce...), nonce, secret, []byte{sealVersion}), nil
}

// Open reverses Seal; a sealed value altered, or sealed under another key,
// is refused.
func Open(key, sealed []byte) ([]byte, error) {
	aead, err := sealer(key)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("sealed secret: malformed")
	}
	out, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte{sealVersion})
	if err != nil {
		return nil, errors.New("sealed secret: does not open under the cluster key")
	}
	return out, nil
}

const sealVersion = 1

func sealer(key []byte) (cipher.AEAD, error) {
	if len(key) != KeyBytes {
		return nil, fmt.Errorf("cluster key is %d bytes, want %d", len(key), KeyBytes)
	}
	block, err := aes.NewCipher(derive(key, "aspen-seal-key", nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// derive is HMAC-SHA256 under key of a label and data: keys for each use,
// apart from the token signatures'.
func derive(key []byte, label string, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}
