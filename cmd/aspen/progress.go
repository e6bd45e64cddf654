package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressRedrawGap keeps a fast sweep from spending its time redrawing.
const progressRedrawGap = 100 * time.Millisecond

// progress is the single updating status line of a sweep. It draws only when
// its output is a terminal: in a log file, redrawn lines are noise.
type progress struct {
	w      io.Writer
	on     bool
	total  int
	done   int
	failed int
	start  time.Time
	drawn  time.Time
}

func newProgress(f *os.File, total int) *progress {
	p := &progress{w: f, on: isTerminal(f), total: total, start: time.Now()}
	p.draw()
	return p
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

func (p *progress) add(passed bool) {
	p.done++
	if !passed {
		p.failed++
	}
	if p.done == p.total || time.Since(p.drawn) >= progressRedrawGap {
		p.draw()
	}
}

func (p *progress) draw() {
	if !p.on {
		return
	}
	p.drawn = time.Now()
	elapsed := time.Since(p.start)
	line := fmt.Sprintf("%d/%d runs, %d failed, %s elapsed", p.done, p.total, p.failed, elapsed.Round(time.Second))
	if p.done > 0 && p.done < p.total {
		left := elapsed / time.Duration(p.done) * time.Duration(p.total-p.done)
		line += fmt.Sprintf(", about %s left", left.Round(time.Second))
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

// clear erases the line, so that other output starts on a clean one.
func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) finish() { p.clear() }
