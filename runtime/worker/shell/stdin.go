package shell

import (
	"os"
	"sync"
)

// stdinBytesMax bounds what a request may feed a command: a hook event
// with its value inline is a few KiB; this leaves room and no more.
const stdinBytesMax = 1 << 20

// input is the command's stdin: a pipe the worker owns, fed from a
// goroutine. exec.Cmd is handed the read end as a file, so its Wait never
// waits on a copy (as with the outputs): a command that does not read its
// stdin, or leaves a child holding it, cannot hold the worker. The feed
// ends when everything was written, or when the command closed its end
// (EPIPE), or when stop closes the write end.
type input struct {
	r, w *os.File
	fed  sync.WaitGroup
}

// newInput makes the pipe for data; nil data is no pipe (stdin is
// /dev/null, as before requests had any).
func newInput(data []byte) (*input, error) {
	if data == nil {
		return nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &input{r: r, w: w}, nil
}

// file is what the command gets as stdin (nil: /dev/null).
func (in *input) file() *os.File {
	if in == nil {
		return nil
	}
	return in.r
}

// start closes the worker's copy of the read end, once the command holds
// it, and writes data in the background, closing the write end after it
// so the command reads EOF.
func (in *input) start(data []byte) {
	if in == nil {
		return
	}
	in.r.Close()
	in.fed.Add(1)
	go func() {
		defer in.fed.Done()
		_, _ = in.w.Write(data) // EPIPE when the command closed stdin unread: not an error of the run
		in.w.Close()
	}()
}

// stop ends the feed, if the command left it blocked (it exited without
// reading, its leftovers were killed, and no one holds the read end, or
// something outside its group still does), and waits for it.
func (in *input) stop() {
	if in == nil {
		return
	}
	in.w.Close() // unblocks a Write in progress: the pipe is on Go's poller
	in.fed.Wait()
}

// closeAll closes both ends of a pipe never handed to a command.
func (in *input) closeAll() {
	if in != nil {
		in.r.Close()
		in.w.Close()
	}
}
