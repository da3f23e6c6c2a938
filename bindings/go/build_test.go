package wxmedia_test

// Checks of how the package is built: the linker flags pinned in
// link_static.go against rustc's list, and the copies of the archive and
// header against the repository's build.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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

func TestNativeStaticLibs(t *testing.T) {
	pinned := pinnedNativeLibs(t)
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		t.Skip("cargo is not installed")
	}
	if _, err := os.Stat("../../Cargo.toml"); err != nil {
		t.Skip("not in the wxmedia repository")
	}
	if testing.Short() {
		t.Skip("-short: skipping the rustc print")
	}
	// A target directory of its own, so that the shared release build is not
	// rebuilt (the first run builds the dependencies there once). Without the
	// crate's fingerprint cargo runs rustc, and so the print, again.
	const targetDir = "../../target/go-native-libs"
	old, _ := filepath.Glob(targetDir + "/debug/.fingerprint/wxmedia-*")
	for _, dir := range old {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(cargo, "rustc", "--lib", "--crate-type", "staticlib", "--",
		"--print", "native-static-libs")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR=target/go-native-libs", "CARGO_PROFILE_DEV_DEBUG=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cargo rustc: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`native-static-libs: (.*)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no native-static-libs line in:\n%s", out)
	}
	if got := strings.Fields(string(m[1])); strings.Join(got, " ") != strings.Join(pinned, " ") {
		t.Errorf("link_static.go pins %q, rustc prints %q: update link_static.go", pinned, got)
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
