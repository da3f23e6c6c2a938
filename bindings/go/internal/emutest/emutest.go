// Package emutest runs wxmedia-emulator, the WeChat media API emulator of
// this repository, on loopback for tests, and scripts it through its admin
// API (docs/CONTRACT.md).
//
// It overlaps the public wxmediatest package (start, read the printed
// address, admin calls) but is kept apart: the release module ships
// wxmediatest.go alone (packaging/dist.sh), so wxmediatest cannot import
// this package, and wxmediatest finds its binary only through
// $WXMEDIA_EMULATOR, an embedded copy or PATH, never this repository's
// target/release; using it here would need a new exported entry point in a
// public package for the repository's own tests.
package emutest

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
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Emulator is a running wxmedia-emulator process.
type Emulator struct {
	Addr    string // 127.0.0.1:PORT
	BaseURL string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
}

// Path returns $WXMEDIA_EMULATOR, or target/release/wxmedia-emulator of the
// repository this package is in.
func Path() (string, error) {
	if p := os.Getenv("WXMEDIA_EMULATOR"); p != "" {
		if !filepath.IsAbs(p) { // each test binary runs in its package's directory
			return "", fmt.Errorf("WXMEDIA_EMULATOR=%s: give an absolute path", p)
		}
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "../../../../target/release/wxmedia-emulator")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no emulator at %s (run `make lib` or set WXMEDIA_EMULATOR): %w", p, err)
	}
	return p, nil
}

// Start runs the emulator on a free loopback port with the given arguments
// (e.g. "--platform", "official", "--access-token", "T") and waits for the
// address it prints first. WXMEDIA_EMULATOR_LOG=1 passes its log to stderr.
func Start(args ...string) (*Emulator, error) {
	bin, err := Path()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
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
	e := &Emulator{cmd: cmd}
	select {
	case addr := <-lines:
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			e.Stop()
			return nil, fmt.Errorf("emulator printed %q, want 127.0.0.1:PORT", addr)
		}
		e.Addr, e.BaseURL = addr, "http://"+addr
		return e, nil
	case <-time.After(15 * time.Second):
		e.Stop()
		return nil, errors.New("emulator printed no address within 15s")
	}
}

// Stop ends the emulator with SIGTERM (SIGKILL after 5 s) and waits for it.
func (e *Emulator) Stop() {
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

var adminHTTP = &http.Client{Timeout: 30 * time.Second}

// Do sends an admin request with a JSON body (nil for none) and decodes the
// JSON answer into out (nil to ignore it).
func (e *Emulator) Do(t testing.TB, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.BaseURL+path, body)
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

// Post is Do with POST.
func (e *Emulator) Post(t testing.TB, path string, in, out any) {
	t.Helper()
	e.Do(t, "POST", path, in, out)
}

// Reset clears the emulator's faults and stats (media and tokens stay).
func (e *Emulator) Reset(t testing.TB) {
	t.Helper()
	e.Post(t, "/__admin/reset", struct{}{}, nil)
}

// MediaSpec is the body of POST /__admin/media.
type MediaSpec struct {
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

// MediaMeta is what the admin API says about a media.
type MediaMeta struct {
	MediaID     string          `json:"media_id"`
	Size        int64           `json:"size"`
	SHA256      string          `json:"sha256"`
	Filename    string          `json:"filename"`
	ContentType string          `json:"content_type"`
	Type        string          `json:"type"`
	CreatedAt   json.RawMessage `json:"created_at"` // a number or a string
}

// AddMedia registers a media and returns what the emulator answered.
func (e *Emulator) AddMedia(t testing.TB, m MediaSpec) MediaMeta {
	t.Helper()
	var out MediaMeta
	e.Post(t, "/__admin/media", m, &out)
	if out.MediaID == "" || out.Size != m.Size && m.DataB64 == nil {
		t.Fatalf("POST /__admin/media %+v answered %+v", m, out)
	}
	return out
}

// Media returns what the emulator knows of a media (also an upload).
func (e *Emulator) Media(t testing.TB, id string) MediaMeta {
	t.Helper()
	var out MediaMeta
	e.Do(t, "GET", "/__admin/media/"+id, nil, &out)
	return out
}

// Fault is the body of POST /__admin/faults.
type Fault struct {
	Kind       string `json:"kind"`
	Count      uint32 `json:"count,omitempty"`
	Endpoint   string `json:"endpoint,omitempty"`
	MediaID    string `json:"media_id,omitempty"`
	AfterBytes *int64 `json:"after_bytes,omitempty"`
	Ms         uint64 `json:"ms,omitempty"`
	Errcode    *int64 `json:"errcode,omitempty"`
	Status     uint16 `json:"status,omitempty"`
	// BytesPerSec is the rate of a "throttle" fault.
	BytesPerSec uint64 `json:"bytes_per_sec,omitempty"`
}

// Fault queues a fault.
func (e *Emulator) Fault(t testing.TB, f Fault) {
	t.Helper()
	e.Post(t, "/__admin/faults", f, nil)
}

// Ptr returns a pointer to v, for the optional fields.
func Ptr[T any](v T) *T { return &v }

// RangeRecord is one media request the emulator saw.
type RangeRecord struct {
	MediaID string  `json:"media_id"`
	Header  *string `json:"header"`
	Start   *int64  `json:"start"`
	End     *int64  `json:"end"`
}

// Stats is GET /__admin/stats.
type Stats struct {
	Requests         map[string]int64 `json:"requests"`
	MediaRequests    map[string]int64 `json:"media_requests"`
	Ranges           []RangeRecord    `json:"ranges"`
	BytesServed      int64            `json:"bytes_served"`
	TokenFetches     int64            `json:"token_fetches"`
	Uploads          int64            `json:"uploads"`
	FaultsFired      int64            `json:"faults_fired"`
	URLFetches       []URLFetch       `json:"url_fetches"`
	Jobs             map[string]int64 `json:"jobs"` // "processing", "done", "failed"
	MaxConcurrent    int64            `json:"max_concurrent_connections"`
	CurrentConnected int64            `json:"current_connections"`
}

// URLFetch is one Range request the emulator made fetching an upload-by-URL
// job's URL (End inclusive).
type URLFetch struct {
	JobID string `json:"jobid"`
	URL   string `json:"url"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

// Stats returns the emulator's counters.
func (e *Emulator) Stats(t testing.TB) Stats {
	t.Helper()
	var s Stats
	e.Do(t, "GET", "/__admin/stats", nil, &s)
	return s
}

// RangesOf returns the requests the emulator saw for one media.
func (s Stats) RangesOf(id string) []RangeRecord {
	var out []RangeRecord
	for _, r := range s.Ranges {
		if r.MediaID == id {
			out = append(out, r)
		}
	}
	return out
}

// Splitmix64 and GenReader reproduce the emulator's generated content: byte
// k is byte k%8 (little-endian) of splitmix64(seed + k/8).
func Splitmix64(x uint64) uint64 {
	z := x + 0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// GenReader reads bytes [Off, Size) of the content generated from Seed.
type GenReader struct {
	Seed      uint64
	Off, Size int64
}

func (g *GenReader) Read(p []byte) (int, error) {
	if g.Off >= g.Size {
		return 0, io.EOF
	}
	if int64(len(p)) > g.Size-g.Off {
		p = p[:g.Size-g.Off]
	}
	var word [8]byte
	for i := range p {
		k := g.Off + int64(i)
		if i == 0 || k%8 == 0 {
			binary.LittleEndian.PutUint64(word[:], Splitmix64(g.Seed+uint64(k/8)))
		}
		p[i] = word[k%8]
	}
	g.Off += int64(len(p))
	return len(p), nil
}

// GenBytes returns bytes [off, off+n) of the content generated from seed.
func GenBytes(seed uint64, off, n int64) []byte {
	b := make([]byte, n)
	io.ReadFull(&GenReader{Seed: seed, Off: off, Size: off + n}, b)
	return b
}
