package wxmedia_test

// Checks of how the package is built: the linker flags pinned in
// link_static.go against rustc's list, and the copies of the archive and
// header against the repository's build.

import (
	"bytes"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// pinnedNativeLibs returns the flags after -lwxmedia in link_static.go for
// this GOOS/GOARCH.
func pinnedNativeLibs(t *testing.T) []string {
	src, err := os.ReadFile("link_static.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^#cgo ` + runtime.GOOS + `,` + runtime.GOARCH + ` LDFLAGS: .*-lwxmedia (.*)$`)
	m := re.FindSubmatch(src)
	if m == nil {
		t.Skipf("link_static.go pins no flags for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return strings.Fields(string(m[1]))
}

// TestNativeStaticLibs compares the pinned flags with the repository's one
// list, WXM_NATIVE_STATIC_LIBS in mk/c.mk, which the C tests (tests/c/run.sh)
// pin against `rustc --print native-static-libs`. Checking rustc here again
// would cost a second build of the crate for the same fact.
func TestNativeStaticLibs(t *testing.T) {
	pinned := pinnedNativeLibs(t)
	mk, err := os.ReadFile("../../mk/c.mk")
	if err != nil {
		t.Skip("not in the wxmedia repository")
	}
	m := regexp.MustCompile(`(?m)^WXM_NATIVE_STATIC_LIBS\s*:=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("mk/c.mk has no WXM_NATIVE_STATIC_LIBS")
	}
	if want := strings.Fields(string(m[1])); strings.Join(want, " ") != strings.Join(pinned, " ") {
		t.Errorf("link_static.go pins %q, mk/c.mk (checked against rustc) has %q: update link_static.go", pinned, want)
	}
}

// TestLibraryCopiesCurrent fails when the archive or header the package
// builds with differ from the repository's build: run `make go-lib`.
func TestLibraryCopiesCurrent(t *testing.T) {
	for copied, built := range map[string]string{
		"include/wxmedia.h": "../../include/wxmedia.h",
		"lib/" + runtime.GOOS + "_" + runtime.GOARCH + "/libwxmedia.a": "../../target/release/libwxmedia.a",
	} {
		want, err := os.ReadFile(built)
		if err != nil {
			t.Logf("no %s to compare with: %v", built, err)
			continue
		}
		got, err := os.ReadFile(copied)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run `make go-lib`", copied, built)
		}
	}
}
