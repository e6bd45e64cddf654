package shell

import (
	"io"
	"os"
	"sync"
	"time"
)

// outputs are the command's stdout and stderr: pipes the worker owns and
// reads into captures. exec.Cmd is handed the write ends as files, so its
// Wait only reaps the process and never waits on a pipe; how long the
// output may still be read after that is decided here (drain). With pipes
// made by exec.Cmd, WaitDelay bounds the same wait, but its ErrWaitDelay is
// hidden behind the exit error of a command that failed or was killed, and
// the group could only be killed after the delay.
type outputs struct {
	stdout, stderr *capture
	readers        []*os.File
	writers        []*os.File
	copies         sync.WaitGroup
}

func newOutputs(capBytes int) (*outputs, error) {
	o := &outputs{stdout: newCapture(capBytes), stderr: newCapture(capBytes)}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			o.closeAll()
			return nil, err
		}
		o.readers, o.writers = append(o.readers, r), append(o.writers, w)
	}
	return o, nil
}

// start begins reading, once the command holds the write ends: the worker's
// copies are closed so the readers see EOF when the command's side closes.
func (o *outputs) start() {
	for _, w := range o.writers {
		w.Close()
	}
	o.writers = nil
	for i, dst := range []io.Writer{o.stdout, o.stderr} {
		r := o.readers[i]
		o.copies.Add(1)
		go func() {
			defer o.copies.Done()
			_, _ = io.Copy(dst, r) // ends at EOF, or at an error once drain closes r
		}()
	}
}

// drain waits up to delay for the output to end, then closes the readers:
// a process that left the command's group (setsid) and keeps the pipe open
// cannot hold the worker longer (golang/go#13155). It reports whether the
// output was cut off that way.
func (o *outputs) drain(delay time.Duration) (cutOff bool) {
	ended := make(chan struct{})
	go func() { o.copies.Wait(); close(ended) }()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ended:
	case <-timer.C:
		cutOff = true
	}
	o.closeAll() // unblocks a Read in progress: pipes are on Go's poller
	<-ended
	return cutOff
}

func (o *outputs) closeAll() {
	for _, f := range append(o.readers, o.writers...) {
		f.Close()
	}
}
