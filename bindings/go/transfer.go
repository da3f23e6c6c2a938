package wxmedia

/*
#include "wxmedia.h"
*/
import "C"

import (
	"context"
	"io"
	"sync"
)

// transfer is the Go side of one running download or upload. The library
// reaches it through its handle (handles.go) passed as user_data.
type transfer struct {
	w    io.Writer // download sink
	next uint64    // the offset the sink expects next

	r       io.Reader // upload source
	readErr error     // error (or io.EOF) to report on the next read

	progress func(done, total int64)

	err      error // the first error of a writer, reader or callback
	panicked bool
	panicVal any

	// cancelMu orders a context's cancel against the end of the C call:
	// once returned is set, the cancel func no longer runs.
	cancelMu sync.Mutex
	returned bool
}

// fail records the first error a callback met.
func (t *transfer) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// run performs the blocking C call `call` with the transfer's handle,
// calling cancel (wxm_*_cancel, which is safe from any thread) if ctx ends
// meanwhile. It returns only once cancel can no longer run, so the caller may
// free the C handle afterwards.
func (t *transfer) run(ctx context.Context, cancel func(), call func(h C.uintptr_t) C.int32_t) C.int32_t {
	passAtStart()
	h := register(t)
	defer unregister(h)
	if ctx.Done() == nil {
		return call(h) // ctx can never end (context.Background, say)
	}
	stop := context.AfterFunc(ctx, func() {
		t.cancelMu.Lock()
		defer t.cancelMu.Unlock()
		if !t.returned {
			cancel()
		}
	})
	rc := call(h)
	if !stop() {
		// The func has started or is about to: wait for a cancel under
		// way, or keep one from starting.
		t.cancelMu.Lock()
		t.returned = true
		t.cancelMu.Unlock()
	}
	return rc
}

// result turns the C call's return code into the Go result, raising again a
// panic of a callback. msg is the handle's errmsg, read before it was freed.
func (t *transfer) result(ctx context.Context, rc C.int32_t, msg string) error {
	if t.panicked {
		panic(t.panicVal)
	}
	if rc == 0 {
		return nil
	}
	e := newError(rc, msg)
	switch {
	case Code(rc) == CodeCancelled && ctx.Err() != nil:
		e.cause = ctx.Err()
	case t.err != nil:
		e.cause = t.err
	}
	return e
}

// withCounters attaches a run's counters to its error (an *Error, or nil).
func withCounters(err error, c Counters) error {
	if e, ok := err.(*Error); ok {
		e.Counters = &c
	}
	return err
}

// cancelledBeforeStart is the error of a transfer whose ctx was already done.
func cancelledBeforeStart(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &Error{Code: CodeCancelled, Message: "cancelled before the transfer started", cause: err}
	}
	return nil
}
