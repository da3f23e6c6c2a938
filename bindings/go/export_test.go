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

// EventsInstalled reports whether NewClient gave the library an event
// handler (only with a Config.OnEvent or a Logger enabled at some level).
func EventsInstalled(c *Client) bool { return c.events != nil }

// EventsReleased reports whether the library has released the Client's
// event sink (deleted its cgo.Handle through wxmgoEventFree).
func EventsReleased(c *Client) (released bool) {
	defer func() {
		if recover() != nil {
			released = true
		}
	}()
	cgo.Handle(c.events.handle).Value()
	return false
}
