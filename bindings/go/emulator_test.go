package wxmedia_test

// The harness: one wxmedia-emulator per platform on loopback, started on
// first use and stopped by TestMain (internal/emutest runs and scripts it).

import (
	"os"
	"sync"
	"testing"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

// testToken is the emulator's static access token. It is distinctive so that
// noSecrets can check that no error message ever carries it.
const (
	testToken  = "GoTestToken-7f3a9c1e5b"
	testCorpID = "wxm-corp"   // the emulator's default --corpid
	testSecret = "wxm-secret" // the emulator's default --secret
)

type (
	mediaSpec   = emutest.MediaSpec
	mediaMeta   = emutest.MediaMeta
	fault       = emutest.Fault
	rangeRecord = emutest.RangeRecord
)

type emulator struct {
	*emutest.Emulator
	platform wxmedia.Platform
}

var (
	emuMu  sync.Mutex
	emus   = map[wxmedia.Platform]*emulator{}
	emuErr = map[wxmedia.Platform]error{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	emuMu.Lock()
	for _, e := range emus {
		e.Stop()
	}
	emuMu.Unlock()
	os.Exit(code)
}

// getEmulator returns the running emulator for platform, starting it first if
// needed, after clearing its faults and stats.
func getEmulator(t testing.TB, platform wxmedia.Platform) *emulator {
	t.Helper()
	emuMu.Lock()
	e, err := emus[platform], emuErr[platform]
	if e == nil && err == nil {
		var emu *emutest.Emulator
		emu, err = emutest.Start("--platform", platform.String(), "--access-token", testToken)
		if err == nil {
			e = &emulator{Emulator: emu, platform: platform}
			emus[platform] = e
		}
		emuErr[platform] = err
	}
	emuMu.Unlock()
	if err != nil {
		t.Fatalf("emulator (%v): %v", platform, err)
	}
	e.Reset(t)
	return e
}
