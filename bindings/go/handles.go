package wxmedia

/*
#include <stdint.h>
*/
import "C"

import "sync"

// The handles C holds for running transfers: small integers (user_data of
// the callbacks) that index a table of *transfer, so C never holds a Go
// pointer. runtime/cgo.Handle would do, but costs a sync.Map entry (two
// allocations, ~150 ns) per transfer and a hashed lookup per callback; a
// slot here is reused and a lookup is a lock and an index (~20 ns). The
// TokenProvider, registered once per Client, keeps its cgo.Handle.
var handles struct {
	mu    sync.Mutex
	slots []*transfer // handle h is slots[h-1]; nil when free
	free  []int       // indexes of free slots
}

// register gives t a handle until unregister.
func register(t *transfer) C.uintptr_t {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	if n := len(handles.free); n > 0 {
		i := handles.free[n-1]
		handles.free = handles.free[:n-1]
		handles.slots[i] = t
		return C.uintptr_t(i + 1)
	}
	handles.slots = append(handles.slots, t)
	return C.uintptr_t(len(handles.slots))
}

// lookup returns the transfer of a registered handle (and panics, as an
// invalid cgo.Handle does, on any other).
func lookup(h C.uintptr_t) *transfer {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	if h == 0 || uint64(h) > uint64(len(handles.slots)) || handles.slots[h-1] == nil {
		panic("wxmedia: callback with an invalid transfer handle")
	}
	return handles.slots[h-1]
}

// unregister frees the handle of a transfer whose C call has returned.
func unregister(h C.uintptr_t) {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	handles.slots[h-1] = nil
	handles.free = append(handles.free, int(h-1))
}
