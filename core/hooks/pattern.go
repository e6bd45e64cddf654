package hooks

import (
	"bytes"
	"errors"
	"strings"
)

// A pattern without '*' is a key prefix ("" matches every key). With one,
// it is a glob over '/'-separated segments: "*" matches exactly one segment
// (any bytes but '/'), "**" any number of segments, none included; a
// segment with '*' inside other text ("app-*") matches that text around
// any bytes but '/'. So "svc/**" matches "svc" itself and everything under
// it, "**/port" matches "port".

func checkPattern(p string) error {
	if !strings.Contains(p, "*") {
		return nil
	}
	for _, seg := range strings.Split(p, "/") {
		if strings.Contains(seg, "**") && seg != "**" {
			return errors.New(`pattern: "**" must be a whole segment`)
		}
	}
	return nil
}

func matchPattern(p string, key []byte) bool {
	if strings.IndexByte(p, '*') < 0 {
		return len(key) >= len(p) && string(key[:len(p)]) == p
	}
	return matchSegs(p, key)
}

// matchSegs matches glob p against key, segment by segment, as wildcard
// matching over segments: "**" is the star, any other pattern segment
// matches exactly one key segment. On a mismatch the last "**" takes one
// more key segment and the match goes on from there; no other backtracking
// is needed, so a match costs at most (pattern segments × key segments)
// segment matches, whatever the pattern. Offsets past the end (len+1) mark
// a pattern or key with no segment left.
func matchSegs(p string, key []byte) bool {
	pi, ki := 0, 0
	starP, starK := -1, 0 // after the last "**": where the pattern goes on, and the key segment it was tried at
	for ki <= len(key) {
		if pi <= len(p) {
			pseg, pnext := cutSeg(p, pi)
			if pseg == "**" {
				starP, starK, pi = pnext, ki, pnext
				continue
			}
			if kseg, knext := cutKeySeg(key, ki); matchSeg(pseg, kseg) {
				pi, ki = pnext, knext
				continue
			}
		}
		if starP < 0 {
			return false
		}
		_, starK = cutKeySeg(key, starK) // the "**" takes one more segment
		pi, ki = starP, starK
	}
	for pi <= len(p) { // the key is used up: what is left must be "**" only
		pseg, pnext := cutSeg(p, pi)
		if pseg != "**" {
			return false
		}
		pi = pnext
	}
	return true
}

// cutSeg returns the segment of p starting at i and where the next starts.
func cutSeg(p string, i int) (string, int) {
	if j := strings.IndexByte(p[i:], '/'); j >= 0 {
		return p[i : i+j], i + j + 1
	}
	return p[i:], len(p) + 1
}

func cutKeySeg(key []byte, i int) ([]byte, int) {
	if j := bytes.IndexByte(key[i:], '/'); j >= 0 {
		return key[i : i+j], i + j + 1
	}
	return key[i:], len(key) + 1
}

// matchSeg matches one segment: '*' stands for any bytes (no '/' reach
// here). Greedy with a return to the last '*': linear in practice, at
// most len(p) × len(s) steps.
func matchSeg(p string, s []byte) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0: // the last '*' takes one more byte
			mark++
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
