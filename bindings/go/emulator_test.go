package wxmedia_test

// The test harness: wxmedia-emulator processes on loopback (one per platform,
// started on first use and stopped by TestMain), its admin API, and the
// generator of its media content.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

// testToken is the emulator's static access token. It is distinctive so that
// noSecrets can check that no error message ever carries it.
const (
	testToken  = "GoTestToken-7f3a9c1e5b"
	testCorpID = "wxm-corp"   // the emulator's default --corpid
	testSecret = "wxm-secret" // the emulator's default --secret
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopEmulators()
	os.Exit(code)
}

type emulator struct {
	addr     string // 127.0.0.1:PORT
	base     string // http://127.0.0.1:PORT
	platform wxmedia.Platform
	cmd      *exec.Cmd
}

var (
	emuMu  sync.Mutex
	emus   = map[wxmedia.Platform]*emulator{}
	emuErr = map[wxmedia.Platform]error{}
)

func emulatorPath() (string, error) {
	if p := os.Getenv("WXMEDIA_EMULATOR"); p != "" {
		return p, nil
	}
	p, err := filepath.Abs("../../target/release/wxmedia-emulator")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no emulator at %s (run `make lib` or set WXMEDIA_EMULATOR): %w", p, err)
	}
	return p, nil
}

// getEmulator returns the running emulator for platform, starting it first if
// needed, after clearing its faults and stats.
func getEmulator(t testing.TB, platform wxmedia.Platform) *emulator {
	t.Helper()
	emuMu.Lock()
	e, err := emus[platform], emuErr[platform]
	if e == nil && err == nil {
		e, err = startEmulator(platform)
		emus[platform], emuErr[platform] = e, err
	}
	emuMu.Unlock()
	if err != nil {
		t.Fatalf("emulator (%v): %v", platform, err)
	}
	e.post(t, "/__admin/reset", struct{}{}, nil)
	return e
}

func startEmulator(platform wxmedia.Platform) (*emulator, error) {
	bin, err := emulatorPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--platform", platform.String(),
		"--access-token", testToken)
	if os.Getenv("WXMEDIA_EMULATOR_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, r) // never let a full pipe block the emulator
	}()
	select {
	case addr := <-lines:
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("emulator printed %q, want 127.0.0.1:PORT", addr)
		}
		return &emulator{addr: addr, base: "http://" + addr, platform: platform, cmd: cmd}, nil
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("emulator printed no address within 15s")
	}
}

func stopEmulators() {
	emuMu.Lock()
	defer emuMu.Unlock()
	for _, e := range emus {
		if e == nil {
			continue
		}
		e.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			e.cmd.Process.Kill()
			<-done
		}
	}
}

var adminHTTP = &http.Client{Timeout: 30 * time.Second}

// do sends an admin request with a JSON body (nil for none) and decodes the
// JSON answer into out (nil to ignore it).
func (e *emulator) do(t testing.TB, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func (e *emulator) post(t testing.TB, path string, in, out any) {
	t.Helper()
	e.do(t, "POST", path, in, out)
}

// mediaSpec is the body of POST /__admin/media.
type mediaSpec struct {
	MediaID     string `json:"media_id,omitempty"`
	Filename    string `json:"filename,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Seed        uint64 `json:"seed,omitempty"`
	DataB64     []byte `json:"data_b64,omitempty"` // encoding/json writes []byte as base64
	Encrypted   bool   `json:"encrypted,omitempty"`
	Async       bool   `json:"async,omitempty"`
	Video       bool   `json:"video,omitempty"`
	Kind        string `json:"kind,omitempty"`
}

type mediaMeta struct {
	MediaID     string          `json:"media_id"`
	Size        int64           `json:"size"`
	SHA256      string          `json:"sha256"`
	Filename    string          `json:"filename"`
	ContentType string          `json:"content_type"`
	Type        string          `json:"type"`
	CreatedAt   json.RawMessage `json:"created_at"` // a number or a string
}

// addMedia registers a media and returns what the emulator answered.
func (e *emulator) addMedia(t testing.TB, m mediaSpec) mediaMeta {
	t.Helper()
	var out mediaMeta
	e.post(t, "/__admin/media", m, &out)
	if out.MediaID == "" || out.Size != m.Size && m.DataB64 == nil {
		t.Fatalf("POST /__admin/media %+v answered %+v", m, out)
	}
	return out
}

func (e *emulator) media(t testing.TB, id string) mediaMeta {
	t.Helper()
	var out mediaMeta
	e.do(t, "GET", "/__admin/media/"+id, nil, &out)
	return out
}

// fault is the body of POST /__admin/faults.
type fault struct {
	Kind       string `json:"kind"`
	Count      uint32 `json:"count,omitempty"`
	Endpoint   string `json:"endpoint,omitempty"`
	MediaID    string `json:"media_id,omitempty"`
	AfterBytes *int64 `json:"after_bytes,omitempty"`
	Ms         uint64 `json:"ms,omitempty"`
	Errcode    *int64 `json:"errcode,omitempty"`
	Status     uint16 `json:"status,omitempty"`
}

func (e *emulator) fault(t testing.TB, f fault) { t.Helper(); e.post(t, "/__admin/faults", f, nil) }

func ptr[T any](v T) *T { return &v }

type rangeRecord struct {
	MediaID string  `json:"media_id"`
	Header  *string `json:"header"`
	Start   *int64  `json:"start"`
	End     *int64  `json:"end"`
}

type stats struct {
	Requests         map[string]int64 `json:"requests"`
	MediaRequests    map[string]int64 `json:"media_requests"`
	Ranges           []rangeRecord    `json:"ranges"`
	BytesServed      int64            `json:"bytes_served"`
	TokenFetches     int64            `json:"token_fetches"`
	Uploads          int64            `json:"uploads"`
	FaultsFired      int64            `json:"faults_fired"`
	MaxConcurrent    int64            `json:"max_concurrent_connections"`
	CurrentConnected int64            `json:"current_connections"`
}

func (e *emulator) stats(t testing.TB) stats {
	t.Helper()
	var s stats
	e.do(t, "GET", "/__admin/stats", nil, &s)
	return s
}

// rangesOf returns the Range requests the emulator saw for one media.
func (s stats) rangesOf(id string) []rangeRecord {
	var out []rangeRecord
	for _, r := range s.Ranges {
		if r.MediaID == id {
			out = append(out, r)
		}
	}
	return out
}

// splitmix64 and genReader reproduce the emulator's generated content: byte
// k is byte k%8 (little-endian) of splitmix64(seed + k/8).
func splitmix64(x uint64) uint64 {
	z := x + 0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

type genReader struct {
	seed      uint64
	off, size int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	if int64(len(p)) > g.size-g.off {
		p = p[:g.size-g.off]
	}
	var word [8]byte
	for i := range p {
		k := g.off + int64(i)
		if i == 0 || k%8 == 0 {
			binary.LittleEndian.PutUint64(word[:], splitmix64(g.seed+uint64(k/8)))
		}
		p[i] = word[k%8]
	}
	g.off += int64(len(p))
	return len(p), nil
}

// genBytes returns bytes [off, off+n) of the content generated from seed.
func genBytes(seed uint64, off, n int64) []byte {
	b := make([]byte, n)
	io.ReadFull(&genReader{seed: seed, off: off, size: off + n}, b)
	return b
}
