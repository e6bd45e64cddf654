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
// any bytes but '/'.

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

// matchSegs matches glob p against key, segment by segment.
func matchSegs(p string, key []byte) bool {
	for {
		pseg, prest, pmore := strings.Cut(p, "/")
		if pseg == "**" {
			if !pmore {
				return true // "**" last matches whatever is left
			}
			for { // try the rest of the pattern at every segment boundary
				if matchSegs(prest, key) {
					return true
				}
				i := bytes.IndexByte(key, '/')
				if i < 0 {
					return false
				}
				key = key[i+1:]
			}
		}
		kseg, krest, kmore := bytes.Cut(key, []byte("/"))
		if !matchSeg(pseg, kseg) || pmore != kmore {
			return false
		}
		if !pmore {
			return true
		}
		p, key = prest, krest
	}
}

// matchSeg matches one segment: '*' stands for any bytes (no '/' reach here).
func matchSeg(p string, s []byte) bool {
	star := strings.IndexByte(p, '*')
	if star < 0 {
		return string(s) == p
	}
	if len(s) < star || string(s[:star]) != p[:star] {
		return false
	}
	rest := p[star+1:]
	for i := star; i <= len(s); i++ {
		if matchSeg(rest, s[i:]) {
			return true
		}
	}
	return false
}
