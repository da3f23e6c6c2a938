//go:build !wxmedia_custom

package wxmedia

// Static linking against lib/<GOOS>_<GOARCH>/libwxmedia.a, which `make go-lib`
// builds and copies into place (see README.md). Only the archive is in that
// directory, so -lwxmedia resolves to it and the program needs no
// libwxmedia.so at run time.
//
// The libraries after -lwxmedia are what the Rust standard library needs, as
// printed by `cargo rustc --release --lib --crate-type staticlib --
// --print native-static-libs`; TestNativeStaticLibs compares them with a
// fresh print.
//
// Build with -tags wxmedia_custom to drop these flags and link with your own
// CGO_LDFLAGS instead.

/*
#cgo linux,amd64 LDFLAGS: -L${SRCDIR}/lib/linux_amd64 -lwxmedia -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo linux,arm64 LDFLAGS: -L${SRCDIR}/lib/linux_arm64 -lwxmedia -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"
