package wxmedia

// The //export functions the library calls back through shim.c. A file with
// //export may only declare in its preamble, so the trampolines live in
// shim.c. user_data is the transfer's handle (handles.go), never a Go pointer.
//
// The library calls a transfer's callbacks one at a time and only on the
// thread that runs it, i.e. inside the cgo call made by the goroutine that
// called Download or Upload; so a transfer's fields need no locking.

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// catch turns a panic in a callback into "stop"; the panic is raised again
// on the caller's goroutine once the C call has returned.
func catch[T C.int32_t | C.int64_t](t *transfer, rc *T) {
	if v := recover(); v != nil {
		if !t.panicked {
			t.panicked, t.panicVal = true, v
		}
		*rc = -1
	}
}

//export wxmgoSink
func wxmgoSink(h C.uintptr_t, offset C.uint64_t, data *C.uint8_t, n C.size_t, pass C.int32_t) (rc C.int32_t) {
	t := lookup(h)
	defer catch(t, &rc)
	passInCallback(pass)
	if uint64(offset) != t.next {
		t.fail(&Error{Code: CodeProtocol, Message: fmt.Sprintf("library bug: sink called at offset %d, expected %d", uint64(offset), t.next)})
		return 1
	}
	if n == 0 {
		return 0
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n))
	written, err := t.w.Write(p)
	t.next += uint64(written)
	if err == nil && written != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		t.fail(err)
		return 1
	}
	return 0
}

//export wxmgoProgress
func wxmgoProgress(h C.uintptr_t, done, total C.uint64_t, pass C.int32_t) (rc C.int32_t) {
	t := lookup(h)
	defer catch(t, &rc)
	passInCallback(pass)
	t.progress(int64(done), int64(total))
	return 0
}

// maxEmptyReads bounds how often a reader may answer (0, nil) in a row
// before the upload fails with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

//export wxmgoRead
func wxmgoRead(h C.uintptr_t, buf *C.uint8_t, capacity C.size_t, pass C.int32_t) (rc C.int64_t) {
	t := lookup(h)
	defer catch(t, &rc)
	passInCallback(pass)
	if t.readErr != nil {
		return t.takeReadErr()
	}
	if capacity == 0 {
		return 0
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(capacity))
	for i := 0; i < maxEmptyReads; i++ {
		n, err := t.r.Read(p)
		if n < 0 || n > len(p) {
			t.fail(fmt.Errorf("wxmedia: reader returned %d bytes for a %d-byte buffer", n, len(p)))
			return -1
		}
		if n > 0 {
			t.readErr = err // reported on the next call
			return C.int64_t(n)
		}
		if err != nil {
			t.readErr = err
			return t.takeReadErr()
		}
	}
	t.fail(io.ErrNoProgress)
	return -1
}

// takeReadErr answers a pending reader error: 0 at io.EOF (and on every later
// call), -1 otherwise.
func (t *transfer) takeReadErr() C.int64_t {
	if errors.Is(t.readErr, io.EOF) {
		return 0
	}
	t.fail(t.readErr)
	return -1
}
