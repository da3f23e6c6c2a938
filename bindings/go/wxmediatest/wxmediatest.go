// Package wxmediatest starts the wxmedia emulator — a real HTTP server that
// speaks WeChat's temporary-media API on loopback — for tests, as
// net/http/httptest starts an HTTP server:
//
//	func TestUpload(t *testing.T) {
//		srv := wxmediatest.NewServer(t)            // stopped by t.Cleanup
//		client, err := wxmedia.NewClient(wxmedia.Config{
//			BaseURL: srv.URL, AccessToken: srv.Token})
//		...
//	}
//
// The emulator binary is, in order: $WXMEDIA_EMULATOR, the copy embedded in
// the released module (linux/amd64), wxmedia-emulator on PATH.
package wxmediatest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	"testing"
	"time"
)

// Token is the static access_token a Server accepts unless told otherwise.
const Token = "wxmediatest-token"

// embedded is the emulator binary when the module carries one (set by the
// release layout's embed file); nil in the source repository.
var embedded []byte

// Server is one running emulator on 127.0.0.1.
type Server struct {
	URL      string // base URL, e.g. http://127.0.0.1:40123
	Addr     string // host:port
	Token    string // the access_token it accepts
	Platform string // wecom, kf, official or miniprogram
	cmd      *exec.Cmd
	stderr   bytes.Buffer
	once     sync.Once
}

// NewServer starts an emulator for the WeCom API with the static token
// Token, and stops it when the test ends. It fails the test if the emulator
// cannot start.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start("wecom", Token)
	if err != nil {
		tb.Fatalf("wxmediatest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts an emulator for platform (wecom, kf, official, miniprogram)
// accepting token, with extra command-line flags. Call Close when done.
func Start(platform, token string, extraArgs ...string) (*Server, error) {
	exe, err := Path()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--listen", "127.0.0.1:0", "--platform", platform, "--access-token", token}, extraArgs...)
	s := &Server{Token: token, Platform: platform}
	s.cmd = exec.Command(exe, args...)
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", exe, err)
	}
	// The emulator prints its bound address as its first line.
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-line:
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			s.Close()
			return nil, fmt.Errorf("the emulator did not start: %q %s", addr, s.stderr.String())
		}
		s.Addr, s.URL = addr, "http://"+addr
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("the emulator printed no address within 30 s")
	}
	return s, nil
}

// Close stops the emulator.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.cmd.Process != nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
}

// AddMedia registers a media holding data (filename may be empty) and
// returns its media_id. The admin API is documented in docs/CONTRACT.md.
func (s *Server) AddMedia(data []byte, filename string) (string, error) {
	body := map[string]any{"data_b64": base64.StdEncoding.EncodeToString(data)}
	if filename != "" {
		body["filename"] = filename
	}
	var out struct {
		MediaID string `json:"media_id"`
	}
	if err := s.Admin(http.MethodPost, "/__admin/media", body, &out); err != nil {
		return "", err
	}
	return out.MediaID, nil
}

// Admin calls the emulator's admin API with a JSON body (nil for none) and
// decodes its JSON answer into out (nil to ignore it).
func (s *Server) Admin(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("admin %s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

var (
	extractOnce sync.Once
	extracted   string
	extractErr  error
)

// Path returns the emulator binary NewServer runs.
func Path() (string, error) {
	if env := os.Getenv("WXMEDIA_EMULATOR"); env != "" {
		return env, nil
	}
	if embedded != nil {
		extractOnce.Do(func() { extracted, extractErr = extract() })
		return extracted, extractErr
	}
	if p, err := exec.LookPath("wxmedia-emulator"); err == nil {
		return p, nil
	}
	return "", errors.New("wxmedia-emulator not found: use the released module (it embeds one), " +
		"put it on PATH or set WXMEDIA_EMULATOR")
}

// extract writes the embedded binary once per content into the user's cache
// (module files are read-only and lose their executable bit).
func extract() (string, error) {
	sum := sha256.Sum256(embedded)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "wxmediatest", hex.EncodeToString(sum[:8]))
	exe := filepath.Join(dir, "wxmedia-emulator")
	if st, err := os.Stat(exe); err == nil && st.Size() == int64(len(embedded)) {
		return exe, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "wxmedia-emulator-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(embedded)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o755)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), exe)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return "", werr
	}
	return exe, nil
}
