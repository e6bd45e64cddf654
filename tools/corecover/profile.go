package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// profileLinesMax bounds how many blocks one profile may hold; Aspen's whole
// module is a few thousand.
const profileLinesMax = 10_000_000

// pos is a position in a source file: a line and a byte column, both from 1,
// as the cover tool and go/token count them.
type pos struct {
	line, col int
}

func (p pos) before(q pos) bool {
	return p.line < q.line || (p.line == q.line && p.col < q.col)
}

// block is one counter of a text coverage profile: the statements between
// start and end, and whether any run reached them.
type block struct {
	start, end pos
	stmts      int
	reached    bool
}

// inside reports whether b lies wholly within [from, to].
func (b block) inside(from, to pos) bool {
	return !b.start.before(from) && !to.before(b.end)
}

// parseProfile reads a text profile (the format of `go test -coverprofile` and
// `go tool covdata textfmt`) into blocks by file, as the profile names files:
// import path, then file name. A block listed more than once (profiles merged
// from several runs) is reached if any listing reached it.
func parseProfile(r io.Reader) (map[string][]block, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read profile: %w", err)
		}
		return nil, fmt.Errorf("profile is empty (was the binary built with -cover, and GOCOVERDIR set?)")
	}
	if mode := sc.Text(); !strings.HasPrefix(mode, "mode: ") {
		return nil, fmt.Errorf("profile line 1: got %q, want \"mode: set|count|atomic\"", mode)
	}
	type key struct {
		file       string
		start, end pos
	}
	index := map[key]int{}
	byFile := map[string][]block{}
	for n := 2; sc.Scan(); n++ {
		if n > profileLinesMax {
			return nil, fmt.Errorf("profile holds more than %d blocks", profileLinesMax)
		}
		line := sc.Text()
		if line == "" {
			continue
		}
		file, b, err := parseBlock(line)
		if err != nil {
			return nil, fmt.Errorf("profile line %d: %w", n, err)
		}
		k := key{file, b.start, b.end}
		if i, ok := index[k]; ok {
			byFile[file][i].reached = byFile[file][i].reached || b.reached
			continue
		}
		index[k] = len(byFile[file])
		byFile[file] = append(byFile[file], b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return byFile, nil
}

// parseBlock reads one "file:l0.c0,l1.c1 stmts count" line.
func parseBlock(line string) (string, block, error) {
	colon := strings.LastIndexByte(line, ':')
	if colon < 0 {
		return "", block{}, fmt.Errorf("%q: no file name", line)
	}
	fields := strings.Fields(line[colon+1:])
	if len(fields) != 3 {
		return "", block{}, fmt.Errorf("%q: want file:l0.c0,l1.c1 stmts count", line)
	}
	span := strings.Split(fields[0], ",")
	if len(span) != 2 {
		return "", block{}, fmt.Errorf("%q: span %q is not l0.c0,l1.c1", line, fields[0])
	}
	var b block
	var err error
	if b.start, err = parsePos(span[0]); err != nil {
		return "", block{}, fmt.Errorf("%q: %w", line, err)
	}
	if b.end, err = parsePos(span[1]); err != nil {
		return "", block{}, fmt.Errorf("%q: %w", line, err)
	}
	if b.stmts, err = strconv.Atoi(fields[1]); err != nil || b.stmts < 0 {
		return "", block{}, fmt.Errorf("%q: statement count %q", line, fields[1])
	}
	count, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return "", block{}, fmt.Errorf("%q: hit count %q", line, fields[2])
	}
	b.reached = count > 0
	return line[:colon], b, nil
}

func parsePos(s string) (pos, error) {
	l, c, ok := strings.Cut(s, ".")
	line, err1 := strconv.Atoi(l)
	col, err2 := strconv.Atoi(c)
	if !ok || err1 != nil || err2 != nil || line < 1 || col < 1 {
		return pos{}, fmt.Errorf("position %q is not line.column", s)
	}
	return pos{line, col}, nil
}
