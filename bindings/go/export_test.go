package wxmedia

import "runtime/cgo"

// ProviderReleased reports whether the library has released the Client's
// TokenProvider (deleted its cgo.Handle through wxmgoTokenFree).
func ProviderReleased(c *Client) (released bool) {
	defer func() {
		// Value panics for a deleted handle.
		if recover() != nil {
			released = true
		}
	}()
	cgo.Handle(c.provider.handle).Value()
	return false
}
