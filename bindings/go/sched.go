package wxmedia

/*
#include "shim.h"
*/
import "C"

import "runtime"

// Scheduler passes.
//
// The runtime's monitor thread (sysmon) preempts a goroutine that has held
// its P for 10 ms without passing through the scheduler. A goroutine in a
// cgo call cannot be preempted, so sysmon takes its P instead, and nothing
// resets the P's clock: a goroutine that calls Download in a loop, or one
// long Download that calls back into Go, never passes through the
// scheduler. From then on the P is taken whenever the goroutine stays in C
// for two sysmon ticks; the next callback or return must win a P back
// under the scheduler's lock and wakes sysmon from its deep sleep, which
// sends it back to polling every 20 µs. Measured on two cores, 1,000
// downloads of 100 KiB cost 0.5 nanosleep, 0.6-0.9 futex calls and 2.0-2.4
// context switches per download against the C host's 1.0, and a 256 MiB
// sink download (1,024 callbacks) 500 nanosleeps and 550 futex calls.
//
// So a transfer passes through the scheduler (runtime.Gosched) every few
// milliseconds: at its start once WXMGO_PASS_START_NS have gone by since the
// last pass, and in a sink, reader or progress callback once
// WXMGO_PASS_CALLBACK_NS have (a callback's goroutine is locked to its
// thread, which makes its pass dearer: the P goes to another thread and
// back). The clock is per OS thread, kept in C (wxmgo_pass_due): sysmon's
// clock is per P, and a goroutine in a cgo call keeps both its thread and
// its P. A pass costs at most the wakeup of an idle thread, and comes a few
// hundred times a second; with it, the 1,000 downloads cost 0.1 nanosleep,
// 0.1 futex call and 1.2 context switches each, and the 256 MiB download 90
// nanosleeps and 190 futex calls. (A C call that blocks for over 10 ms
// without calling back still loses its P once, as any cgo call does.)

// passAtStart makes a transfer's scheduler pass, if one is due, before its
// C call.
func passAtStart() {
	if C.wxmgo_pass_due(C.WXMGO_PASS_START_NS) != 0 {
		runtime.Gosched()
	}
}

// passInCallback makes the pass the C trampoline found due.
func passInCallback(due C.int32_t) {
	if due != 0 {
		runtime.Gosched()
	}
}
