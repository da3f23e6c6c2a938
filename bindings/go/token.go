package wxmedia

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// tokenProvider is the Go side of Config.TokenProvider. The library owns
// its cgo.Handle from wxm_config_set_token_provider on, and deletes it
// through wxmgoTokenFree (its free_fn) once nothing can call the provider:
// the config, the Client and every transfer of the Client are gone.
type tokenProvider struct {
	fn      TokenProvider
	handle  cgo.Handle
	timeout time.Duration // each call's Context deadline

	mu  sync.Mutex
	err error // the last call's error, nil after a success
}

func newTokenProvider(fn TokenProvider, timeout time.Duration) *tokenProvider {
	p := &tokenProvider{fn: fn, timeout: timeout}
	p.handle = cgo.NewHandle(p)
	return p
}

func (p *tokenProvider) lastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// token calls the host's function for a token of at most capacity bytes,
// turning a panic into an error, and keeps the outcome for lastError.
func (p *tokenProvider) token(force bool, capacity int) (tok string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("wxmedia: TokenProvider panicked: %v", v)
		}
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	tok, err = p.fn(ctx, force)
	if err == nil && len(tok) > capacity {
		err = fmt.Errorf("wxmedia: TokenProvider returned %d bytes, more than the %d a token may have", len(tok), capacity)
	}
	return tok, err
}

// wxmgoTokenFree is the provider's free_fn: called by the library exactly
// once, after its last call of the provider, on whichever thread dropped
// the library's last reference.
//
//export wxmgoTokenFree
func wxmgoTokenFree(h C.uintptr_t) {
	cgo.Handle(h).Delete()
}

//export wxmgoToken
func wxmgoToken(h C.uintptr_t, force C.int32_t, buf *C.char, capacity C.size_t, length *C.size_t) C.int32_t {
	p := cgo.Handle(h).Value().(*tokenProvider)
	tok, err := p.token(force != 0, int(capacity))
	if err != nil {
		var e *Error
		var code Code
		if errors.As(err, &e) && e.Code > 0 {
			return C.int32_t(e.Code)
		}
		if errors.As(err, &code) && code > 0 {
			return C.int32_t(code)
		}
		return C.int32_t(CodeNoToken)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(capacity)), tok)
	*length = C.size_t(len(tok))
	return 0
}
