//go:build wxmedia_custom

package wxmedia

// With -tags wxmedia_custom the package adds no linker flags: supply the
// library yourself, for example
//
//	CGO_LDFLAGS="-L/opt/wxmedia/lib -lwxmedia -lm -ldl -lpthread" go build -tags wxmedia_custom
//
// and, for a header other than the bundled include/wxmedia.h,
// CGO_CFLAGS="-I/opt/wxmedia/include" (flags from the environment come before
// the package's own -I, so they win).

import "C"
