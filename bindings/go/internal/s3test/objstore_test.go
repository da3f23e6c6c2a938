// Package s3test tests Client.DownloadToObject against the emulator (as
// WeChat) and versitygw (a real S3-compatible server that checks SigV4
// signatures), reading the objects back with minio-go. It is a module of
// its own so that minio-go, a test-only dependency, stays out of the
// wxmedia module and of the release module made from it.
package s3test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

const (
	s3Access  = "wxm-go-access"
	s3Secret  = "wxm-go-secret-Kq81Zp03"
	s3Region  = "us-east-1"
	bucket    = "media"
	testToken = "GoS3TestToken-4d2b8e"
	mib       = 1 << 20
	partSize  = 5 * mib
)

// gateway is a running versitygw with a fresh posix directory, and a
// minio-go client of its own to read back what the library wrote.
type gateway struct {
	Endpoint string // http://127.0.0.1:PORT
	dir      string
	s3       *minio.Core
}

// versitygwBin is the binary `make versitygw` installs; a test that needs
// it fails (never skips) without it.
func versitygwBin(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "../../../../build/tools/bin/versitygw")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make versitygw`: %v", bin, err)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startGateway runs versitygw on loopback with bucket already made (a
// bucket of its posix backend is a directory) and stops it when the test
// ends.
func startGateway(t testing.TB) *gateway {
	t.Helper()
	bin := versitygwBin(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	// A port freed just before may be taken by another process: a few tries.
	for try := 0; try < 5; try++ {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "--access", s3Access, "--secret", s3Secret,
			"--region", s3Region, "--port", addr, "--quiet", "posix", dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(15 * time.Second)
		for {
			select {
			case err := <-exited:
				t.Logf("versitygw on %s exited (%v): %s", addr, err, stderr.String())
			default:
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					t.Cleanup(func() {
						cmd.Process.Kill()
						<-exited
					})
					mc, err := minio.NewCore(addr, &minio.Options{
						Creds:        credentials.NewStaticV4(s3Access, s3Secret, ""),
						Region:       s3Region,
						BucketLookup: minio.BucketLookupPath,
					})
					if err != nil {
						t.Fatalf("minio client: %v", err)
					}
					return &gateway{Endpoint: "http://" + addr, dir: dir, s3: mc}
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("versitygw did not listen on %s", addr)
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
	}
	t.Fatal("versitygw did not start")
	return nil
}

// store is the ObjectStore of the gateway with the test credentials.
func (g *gateway) store() wxmedia.ObjectStore {
	return wxmedia.ObjectStore{
		Endpoint:  g.Endpoint,
		Region:    s3Region,
		AccessKey: s3Access,
		SecretKey: s3Secret,
		PartSize:  partSize,
	}
}

// object reads key back (a signed GET): its sha256 and length, or ok false
// when the store has no such object.
func (g *gateway) object(t testing.TB, key string) (sum string, n int64, info minio.ObjectInfo, ok bool) {
	t.Helper()
	ctx := context.Background()
	obj, info, _, err := g.s3.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return "", 0, info, false
		}
		t.Fatalf("GET %s: %v", key, err)
	}
	defer obj.Close()
	h := sha256.New()
	n, err = io.Copy(h, obj)
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, info, true
}

// uploads lists the multipart uploads in progress in the bucket.
func (g *gateway) uploads(t testing.TB) []string {
	t.Helper()
	r, err := g.s3.ListMultipartUploads(context.Background(), bucket, "", "", "", "", 1000)
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var keys []string
	for _, u := range r.Uploads {
		keys = append(keys, u.Key)
	}
	return keys
}

var (
	emuOnce sync.Once
	emu     *emutest.Emulator
	emuErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if emu != nil {
		emu.Stop()
	}
	os.Exit(code)
}

func emulator(t testing.TB) *emutest.Emulator {
	t.Helper()
	emuOnce.Do(func() { emu, emuErr = emutest.Start("--platform", "wecom", "--access-token", testToken) })
	if emuErr != nil {
		t.Fatalf("emulator: %v", emuErr)
	}
	return emu
}

// events is what a Client's OnEvent received.
type events struct {
	mu  sync.Mutex
	all []wxmedia.Event
}

// requests returns the endpoints of the finished requests and their statuses.
func (ev *events) requests() map[string]int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	out := map[string]int{}
	for _, e := range ev.all {
		if e.Kind == wxmedia.EventRequestFinished {
			out[e.Endpoint] = e.HTTPStatus
		}
	}
	return out
}

// wrongSecret is the secret of the wrong-credentials test, looked for too.
const wrongSecret = "not-the-secret-Wq55Rt21"

// newClient returns a Client for the emulator whose events are recorded and,
// when the test ends, checked for secrets.
func newClient(t testing.TB, e *emutest.Emulator, parallelism int) (*wxmedia.Client, *events) {
	t.Helper()
	ev := &events{}
	c, err := wxmedia.NewClient(wxmedia.Config{
		Platform:       wxmedia.PlatformWeCom,
		BaseURL:        e.BaseURL,
		AccessToken:    testToken,
		ChunkSize:      mib,
		Parallelism:    parallelism,
		ConnectTimeout: 2 * time.Second,
		IOTimeout:      10 * time.Second,
		MaxAttempts:    4,
		Backoff:        10 * time.Millisecond,
		OnEvent: func(e wxmedia.Event) {
			ev.mu.Lock()
			ev.all = append(ev.all, e)
			ev.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		ev.mu.Lock()
		defer ev.mu.Unlock()
		for _, e := range ev.all {
			text := fmt.Sprintf("%+v", e)
			for _, secret := range []string{s3Secret, wrongSecret, testToken} {
				if strings.Contains(text, secret) {
					t.Errorf("an event holds a secret: %s", text)
				}
			}
		}
	})
	return c, ev
}

// addMedia registers a generated media and returns its id and sha256.
func addMedia(t testing.TB, e *emutest.Emulator, size int64, seed uint64) (string, string) {
	t.Helper()
	m := e.AddMedia(t, emutest.MediaSpec{Size: size, Seed: seed, Filename: "clip.mp4", ContentType: "video/mp4"})
	h := sha256.New()
	if _, err := io.Copy(h, &emutest.GenReader{Seed: seed, Size: size}); err != nil {
		t.Fatal(err)
	}
	return m.MediaID, hex.EncodeToString(h.Sum(nil))
}

func wantCode(t testing.TB, err error, code wxmedia.Code, sentinel error) *wxmedia.Error {
	t.Helper()
	var e *wxmedia.Error
	if !errors.As(err, &e) || e.Code != code || !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want an *Error with code %d matching %v", err, code, sentinel)
	}
	if strings.Contains(err.Error(), s3Secret) || strings.Contains(err.Error(), testToken) {
		t.Errorf("error message leaks a secret: %q", err.Error())
	}
	return e
}

// 1 MiB (one PutObject) and ~12 MiB (three parts) at parallelism 1 and 4:
// byte-identical, with the media's type, progress up to the size, counters
// that add up and nothing left in progress.
func TestDownloadToObject(t *testing.T) {
	e := emulator(t)
	g := startGateway(t)
	for _, size := range []int64{mib, 12*mib + 345} {
		for _, par := range []int{1, 4} {
			t.Run(fmt.Sprintf("%d_bytes_parallelism_%d", size, par), func(t *testing.T) {
				id, want := addMedia(t, e, size, uint64(size)+uint64(par))
				c, ev := newClient(t, e, par)
				key := fmt.Sprintf("in/%d-%d.mp4", size, par)
				var last, total int64
				back := false
				info, err := c.DownloadToObject(context.Background(), id, g.store(), bucket, key,
					wxmedia.WithProgress(func(done, tot int64) {
						back = back || done < last
						last, total = done, tot
					}))
				if err != nil {
					t.Fatalf("DownloadToObject: %v", err)
				}
				if info.MediaID != id || info.Size != size || info.ContentType != "video/mp4" || info.Filename != "clip.mp4" {
					t.Errorf("info %+v", info)
				}
				if last != size || total != size || back {
					t.Errorf("progress ended at %d/%d (went back: %v), want %d", last, total, back, size)
				}
				sum, n, oi, ok := g.object(t, key)
				if !ok || n != size || sum != want {
					t.Fatalf("object %s: found %v, %d bytes, sha256 %s; want %d bytes, %s", key, ok, n, sum, size, want)
				}
				if oi.ContentType != "video/mp4" {
					t.Errorf("object Content-Type %q", oi.ContentType)
				}
				cn := info.Counters
				parts := (size + partSize - 1) / partSize
				// BytesSent counts part bodies: a multipart upload's include
				// its resume marker, a part of a few hundred bytes naming
				// the media.
				sentMax := size
				if parts > 1 {
					sentMax += 1024
				}
				// WeChat's Range requests (one per MiB chunk) plus at least
				// one store request per part.
				if cn.BytesReceived != size || cn.BytesSent < size || cn.BytesSent > sentMax || cn.ResumedFrom != 0 ||
					cn.Requests < size/mib+parts || cn.Retries != 0 || cn.TransferID == 0 || cn.Elapsed <= 0 {
					t.Errorf("counters %+v", cn)
				}
				// The store's requests are events too, named bucket/key.
				if st, ok := ev.requests()[bucket+"/"+key]; !ok || st != 200 {
					t.Errorf("no request event for %s/%s with status 200: %v", bucket, key, ev.requests())
				}
				if u := g.uploads(t); len(u) != 0 {
					t.Errorf("uploads left in progress: %v", u)
				}
			})
		}
	}
}

// Zero values of ObjectStore take the environment's settings, as the AWS
// tools do (read by the library, not by the Go package).
func TestDownloadToObjectFromEnvironment(t *testing.T) {
	e := emulator(t)
	g := startGateway(t)
	t.Setenv("AWS_ENDPOINT_URL", g.Endpoint)
	t.Setenv("AWS_REGION", s3Region)
	t.Setenv("AWS_ACCESS_KEY_ID", s3Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	id, want := addMedia(t, e, 2*mib+7, 77)
	c, _ := newClient(t, e, 2)
	if _, err := c.DownloadToObject(context.Background(), id, wxmedia.ObjectStore{}, bucket, "env"); err != nil {
		t.Fatalf("DownloadToObject: %v", err)
	}
	if sum, _, _, ok := g.object(t, "env"); !ok || sum != want {
		t.Fatalf("object env: found %v, sha256 %s, want %s", ok, sum, want)
	}
}

// A wrong secret or an unknown key: ErrObjectStoreAuth at once (never
// retried), nothing fetched from WeChat, no secret in the message.
func TestDownloadToObjectWrongCredentials(t *testing.T) {
	e := emulator(t)
	g := startGateway(t)
	id, _ := addMedia(t, e, 6*mib, 13)
	c, _ := newClient(t, e, 2)
	const wrong = wrongSecret
	for _, st := range []wxmedia.ObjectStore{
		{Endpoint: g.Endpoint, Region: s3Region, AccessKey: s3Access, SecretKey: wrong},
		{Endpoint: g.Endpoint, Region: s3Region, AccessKey: "nobody", SecretKey: s3Secret},
	} {
		start := time.Now()
		_, err := c.DownloadToObject(context.Background(), id, st, bucket, "k")
		took := time.Since(start)
		we := wantCode(t, err, wxmedia.CodeObjectStoreAuth, wxmedia.ErrObjectStoreAuth)
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("error message leaks the secret: %q", err.Error())
		}
		if took > 2*time.Second {
			t.Errorf("took %v: retried?", took)
		}
		if we.Counters == nil || we.Counters.BytesReceived != 0 || we.Counters.Retries != 0 {
			t.Errorf("counters %+v", we.Counters)
		}
	}
	if _, _, _, ok := g.object(t, "k"); ok {
		t.Error("object k exists")
	}
	if u := g.uploads(t); len(u) != 0 {
		t.Errorf("uploads left in progress: %v", u)
	}
}

func TestDownloadToObjectNoSuchBucket(t *testing.T) {
	e := emulator(t)
	g := startGateway(t)
	id, _ := addMedia(t, e, mib, 14)
	c, _ := newClient(t, e, 1)
	_, err := c.DownloadToObject(context.Background(), id, g.store(), "no-such-bucket", "k")
	we := wantCode(t, err, wxmedia.CodeNoSuchBucket, wxmedia.ErrNoSuchBucket)
	if !strings.Contains(we.Message, "no-such-bucket") {
		t.Errorf("message %q does not name the bucket", we.Message)
	}
}

// Arguments the Go side refuses before the library runs.
func TestDownloadToObjectInvalidArguments(t *testing.T) {
	e := emulator(t)
	id, _ := addMedia(t, e, mib, 15)
	c, _ := newClient(t, e, 1)
	for name, st := range map[string]wxmedia.ObjectStore{
		"key without secret": {Endpoint: "http://127.0.0.1:1", AccessKey: "a"},
		"token alone":        {Endpoint: "http://127.0.0.1:1", SessionToken: "tok"},
		"bad endpoint":       {Endpoint: "ftp://127.0.0.1:1", AccessKey: "a", SecretKey: "s"},
		"small part":         {Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s", PartSize: mib},
		"negative part":      {Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s", PartSize: -1},
		"bad addressing":     {Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s", PathStyle: 9},
	} {
		_, err := c.DownloadToObject(context.Background(), id, st, bucket, "k")
		var we *wxmedia.Error
		if !errors.As(err, &we) || we.Code != wxmedia.CodeInvalidArg {
			t.Errorf("%s: err = %v, want CodeInvalidArg", name, err)
		}
	}
	_, err := c.DownloadToObject(context.Background(), id, wxmedia.ObjectStore{}, bucket, "k", wxmedia.WithStart(16))
	if !errors.Is(err, wxmedia.ErrInvalidArg) {
		t.Errorf("WithStart: err = %v", err)
	}
}

// A cancelled Context stops the transfer once a part is in the store: the
// error wraps context.Canceled, and the upload is aborted (nothing listed,
// no object). With KeepPartsOnFailure the parts stay, and the next run
// resumes them.
func TestDownloadToObjectCancel(t *testing.T) {
	e := emulator(t)
	g := startGateway(t)
	size := int64(23*mib + 5)
	id, want := addMedia(t, e, size, 16)
	// Slow WeChat down so that the cancel lands mid-transfer.
	e.Fault(t, emutest.Fault{Kind: "throttle", MediaID: id, Count: 10000, BytesPerSec: 20_000_000})
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep_%v", keep), func(t *testing.T) {
			c, _ := newClient(t, e, 2)
			st := g.store()
			st.KeepPartsOnFailure = keep
			key := fmt.Sprintf("cancelled-%v", keep)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Progress counts bytes in the store: past one part, one is there.
			_, err := c.DownloadToObject(ctx, id, st, bucket, key, wxmedia.WithProgress(func(done, _ int64) {
				if done >= partSize {
					cancel()
				}
			}))
			we := wantCode(t, err, wxmedia.CodeCancelled, wxmedia.ErrCancelled)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err %v does not wrap context.Canceled", err)
			}
			if we.Counters == nil || we.Counters.BytesSent < partSize || we.Counters.BytesSent >= size {
				t.Errorf("counters %+v", we.Counters)
			}
			if _, _, _, ok := g.object(t, key); ok {
				t.Errorf("object %s exists", key)
			}
			u := g.uploads(t)
			if !keep {
				if len(u) != 0 {
					t.Errorf("uploads left in progress: %v", u)
				}
				return
			}
			if len(u) != 1 || u[0] != key {
				t.Fatalf("uploads in progress %v, want the one of %s", u, key)
			}
			info, err := c.DownloadToObject(context.Background(), id, st, bucket, key)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if info.Counters.ResumedFrom < partSize || info.Counters.BytesReceived > size-info.Counters.ResumedFrom+partSize {
				t.Errorf("resume counters %+v", info.Counters)
			}
			if sum, n, _, ok := g.object(t, key); !ok || n != size || sum != want {
				t.Fatalf("object %s: found %v, %d bytes, sha256 %s; want %s", key, ok, n, sum, want)
			}
			if u := g.uploads(t); len(u) != 0 {
				t.Errorf("uploads left in progress: %v", u)
			}
		})
	}
}
