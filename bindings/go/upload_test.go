package wxmedia_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

// Magic numbers, so that the content matches the type and file name.
var magic = map[string]string{
	".png": "\x89PNG\r\n\x1a\n",
	".jpg": "\xff\xd8\xff\xe0\x00\x10JFIF\x00",
	".gif": "GIF89a",
	".amr": "#!AMR\n",
	".mp3": "ID3\x04\x00\x00",
	".mp4": "\x00\x00\x00\x18ftypmp42",
	".pdf": "%PDF-1.7\n",
	".txt": "plain text, ",
}

// sample returns a reader of size bytes starting with the magic of name's
// extension.
func sample(name string, size int64, seed uint64) io.Reader {
	head := magic[filepath.Ext(name)]
	if int64(len(head)) > size {
		head = head[:size]
	}
	return io.MultiReader(strings.NewReader(head), &emutest.GenReader{Seed: seed, Size: size - int64(len(head))})
}

func sampleBytes(name string, size int64, seed uint64) []byte {
	b, _ := io.ReadAll(sample(name, size, seed))
	return b
}

func writeSample(t testing.TB, dir, name string, size int64, seed uint64) (path, sha string) {
	t.Helper()
	b := sampleBytes(name, size, seed)
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return path, hex.EncodeToString(s[:])
}

// checkStored checks what the emulator stored for an upload.
func checkStored(t testing.TB, e *emulator, res *wxmedia.UploadResult, typ, name, sha string, size int64) {
	t.Helper()
	if res.MediaID == "" || res.Type != typ {
		t.Fatalf("UploadResult %+v, want type %s", res, typ)
	}
	if y := res.CreatedAt.Year(); y < 2020 || res.CreatedAt.After(time.Now().Add(24*time.Hour)) {
		t.Errorf("CreatedAt = %v", res.CreatedAt)
	}
	got := e.Media(t, res.MediaID)
	if got.Size != size || got.SHA256 != sha || got.Filename != name || got.Type != typ {
		t.Errorf("stored %+v, want %d bytes %s named %q of type %s", got, size, sha, name, typ)
	}
	if created, _ := strconv.ParseInt(strings.Trim(string(got.CreatedAt), `"`), 10, 64); created != res.CreatedAt.Unix() {
		t.Errorf("CreatedAt %d, the emulator says %s", res.CreatedAt.Unix(), got.CreatedAt)
	}
}

func TestUploadEachType(t *testing.T) {
	cases := []struct {
		platform wxmedia.Platform
		typ      string
		name     string
		size     int64
	}{
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "photo.png", 200_000},
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "photo.jpg", 100_001},
		{wxmedia.PlatformWeCom, wxmedia.TypeVoice, "voice.amr", 30_000},
		{wxmedia.PlatformWeCom, wxmedia.TypeVideo, "clip.mp4", 1_500_000},
		{wxmedia.PlatformWeCom, wxmedia.TypeFile, "report.pdf", 3_000_000},
		{wxmedia.PlatformKF, wxmedia.TypeImage, "kf.png", 50_000},
		{wxmedia.PlatformKF, wxmedia.TypeFile, "kf.pdf", 50_000},
		{wxmedia.PlatformOfficial, wxmedia.TypeImage, "oa.gif", 40_000},
		{wxmedia.PlatformOfficial, wxmedia.TypeVoice, "oa.mp3", 40_000},
		{wxmedia.PlatformOfficial, wxmedia.TypeVideo, "oa.mp4", 400_000},
		{wxmedia.PlatformOfficial, wxmedia.TypeThumb, "oa-thumb.jpg", 20_000},
		{wxmedia.PlatformMiniProgram, wxmedia.TypeImage, "mp.jpg", 30_000},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%v_%s_%s", tc.platform, tc.typ, filepath.Ext(tc.name)[1:]), func(t *testing.T) {
			e := getEmulator(t, tc.platform)
			c := newClient(t, e, nil)
			seed := uint64(500 + i)
			path, sha := writeSample(t, t.TempDir(), tc.name, tc.size, seed)

			var last int64
			res, err := c.UploadFile(context.Background(), tc.typ, path, wxmedia.WithProgress(func(done, total int64) {
				if done < last || total != tc.size {
					t.Errorf("progress %d/%d after %d", done, total, last)
				}
				last = done
			}))
			if err != nil {
				t.Fatalf("UploadFile: %v", err)
			}
			checkStored(t, e, res, tc.typ, tc.name, sha, tc.size)
			if last != tc.size {
				t.Errorf("progress ended at %d, want %d", last, tc.size)
			}

			res, err = c.Upload(context.Background(), tc.typ, sample(tc.name, tc.size, seed), tc.size, tc.name)
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			checkStored(t, e, res, tc.typ, tc.name, sha, tc.size)

			// And back again.
			w := newHashWriter()
			if _, err := c.Download(context.Background(), res.MediaID, w); err != nil || w.sum() != sha {
				t.Errorf("download of the upload: %v", err)
			}
		})
	}
}

func TestUploadChineseFilename(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	const name = "会议纪要（第3版）.pdf"
	path, sha := writeSample(t, t.TempDir(), name, 12_345, 600)
	res, err := c.UploadFile(context.Background(), wxmedia.TypeFile, path)
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, res, wxmedia.TypeFile, name, sha, 12_345)

	// A quote cannot go raw into the multipart header: the library sends
	// it as %22, as browsers do, and WeChat keeps the name as sent.
	const other, sent = "报告 \"最终\".pdf", "报告 %22最终%22.pdf"
	res, err = c.UploadFile(context.Background(), wxmedia.TypeFile, path, wxmedia.WithFilename(other))
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, res, wxmedia.TypeFile, sent, sha, 12_345)

	info := checkDownload(t, c, mediaMeta{MediaID: res.MediaID, Size: 12_345, SHA256: sha})
	if info.Filename != sent {
		t.Errorf("downloaded Filename = %q, want %q", info.Filename, sent)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestUploadLocalRejections(t *testing.T) {
	const MiB = 1 << 20
	cases := []struct {
		platform wxmedia.Platform
		typ      string
		name     string
		size     int64
		code     wxmedia.Code
		limits   map[string]int64
	}{
		{wxmedia.PlatformWeCom, "bogus", "a.pdf", 100, wxmedia.CodeInvalidMediaType, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeThumb, "t.jpg", 1000, wxmedia.CodeInvalidMediaType, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "tiny.png", 5, wxmedia.CodeInvalidFileSize, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "empty.png", 0, wxmedia.CodeEmptyMedia, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "big.png", 11 * MiB, wxmedia.CodeInvalidImageSize, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeVoice, "big.amr", 3 * MiB, wxmedia.CodeInvalidVoiceSize, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeVideo, "big.mp4", 11 * MiB, wxmedia.CodeInvalidVideoSize, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeFile, "big.pdf", 21 * MiB, wxmedia.CodeInvalidFileSize, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "notes.txt", 1000, wxmedia.CodeInvalidFileType, nil},
		{wxmedia.PlatformWeCom, wxmedia.TypeImage, "small.png", 2000, wxmedia.CodeInvalidImageSize, map[string]int64{"image": 1000}},
		{wxmedia.PlatformKF, wxmedia.TypeImage, "kf.png", 3 * MiB, wxmedia.CodeInvalidImageSize, nil},
		{wxmedia.PlatformOfficial, wxmedia.TypeThumb, "thumb.jpg", 65 << 10, wxmedia.CodeInvalidThumbSize, nil},
		{wxmedia.PlatformOfficial, wxmedia.TypeFile, "a.pdf", 1000, wxmedia.CodeInvalidMediaType, nil},
		{wxmedia.PlatformMiniProgram, wxmedia.TypeVoice, "v.amr", 1000, wxmedia.CodeInvalidMediaType, nil},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%v_%s_%s_%d", tc.platform, tc.typ, tc.name, tc.size), func(t *testing.T) {
			e := getEmulator(t, tc.platform)
			c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.Limits = tc.limits })
			r := &countingReader{r: sample(tc.name, tc.size, uint64(700+i))}
			_, err := c.Upload(context.Background(), tc.typ, r, tc.size, tc.name)
			wantCode(t, err, tc.code)
			if s := e.Stats(t); s.Requests["media/upload"] != 0 {
				t.Errorf("a locally rejected upload reached the server (%d requests)", s.Requests["media/upload"])
			}
			if r.n > 64<<10 {
				t.Errorf("read %d bytes of an upload rejected locally", r.n)
			}
		})
	}
}

var errReader = errors.New("source unreadable (test)")

type failingReader struct {
	r     io.Reader
	n     int64
	after int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, errReader
	}
	if int64(len(p)) > f.after-f.n {
		p = p[:f.after-f.n]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

func TestUploadReaderProblems(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.MaxAttempts = 1 })
	const size = 500_000

	_, err := c.Upload(context.Background(), wxmedia.TypeFile,
		&failingReader{r: sample("a.pdf", size, 800), after: 100_000}, size, "a.pdf")
	if !errors.Is(err, errReader) {
		t.Fatalf("err = %v, want it to wrap the reader's error", err)
	}
	wantCode(t, err, wxmedia.CodeAborted)

	// A reader that ends early is not taken for the whole file.
	_, err = c.Upload(context.Background(), wxmedia.TypeFile, sample("b.pdf", size/2, 801), size, "b.pdf")
	wantCode(t, err, wxmedia.CodeIO)

	// A reader with more bytes than size is not cut silently: the library
	// sees the extra bytes (the package does not limit the reader) and the
	// upload fails with CodeIO before the body is complete.
	for _, tc := range []struct{ size, have int64 }{{1000, 5000}, {10, 11}, {100_000, 100_001}} {
		long := &countingReader{r: bytes.NewReader(sampleBytes("l.pdf", tc.have, 803))}
		_, err = c.Upload(context.Background(), wxmedia.TypeFile, long, tc.size, "l.pdf")
		werr := wantCode(t, err, wxmedia.CodeIO)
		if want := fmt.Sprintf("more than the %d bytes announced", tc.size); !strings.Contains(werr.Message, want) {
			t.Errorf("%d of %d bytes: message %q, want it to say %q", tc.size, tc.have, werr.Message, want)
		}
		if long.n <= tc.size {
			t.Errorf("%d of %d bytes: the library read %d bytes, want it to see the extra ones", tc.size, tc.have, long.n)
		}
	}

	// To send a prefix, the caller limits the reader.
	long := sampleBytes("l.pdf", 5000, 803)
	res, err := c.Upload(context.Background(), wxmedia.TypeFile, io.LimitReader(bytes.NewReader(long), 1000), 1000, "l.pdf")
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, res, wxmedia.TypeFile, "l.pdf", fmt.Sprintf("%x", sha256.Sum256(long[:1000])), 1000)

	// A reader that returns its data with io.EOF.
	data := sampleBytes("c.pdf", 1000, 802)
	res, err = c.Upload(context.Background(), wxmedia.TypeFile, &eofReader{data: data}, 1000, "c.pdf")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	checkStored(t, e, res, wxmedia.TypeFile, "c.pdf", hex.EncodeToString(sum[:]), 1000)

	if s := e.Stats(t); s.Uploads != 2 {
		t.Errorf("%d uploads stored, want only the two of exactly size bytes", s.Uploads)
	}
}

// eofReader returns all its data together with io.EOF in one Read.
type eofReader struct{ data []byte }

func (r *eofReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func TestUploadErrors(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	_, err := c.UploadFile(context.Background(), wxmedia.TypeFile, filepath.Join(t.TempDir(), "missing.pdf"))
	wantCode(t, err, wxmedia.CodeIO)
	_, err = c.Upload(context.Background(), "fi\x00le", bytes.NewReader(make([]byte, 10)), 10, "a.pdf")
	wantCode(t, err, wxmedia.CodeInvalidArg)
	_, err = c.Upload(context.Background(), wxmedia.TypeFile, nil, 10, "a.pdf")
	wantCode(t, err, wxmedia.CodeInvalidArg)
	_, err = c.Upload(context.Background(), wxmedia.TypeFile, bytes.NewReader(nil), -1, "a.pdf")
	wantCode(t, err, wxmedia.CodeInvalidArg)

	// The server's own errcode comes back as it is.
	e.Fault(t, fault{Kind: "errcode", Endpoint: "media/upload", Errcode: emutest.Ptr[int64](45009)})
	_, err = c.Upload(context.Background(), wxmedia.TypeFile, bytes.NewReader(sampleBytes("d.pdf", 100, 1)), 100, "d.pdf")
	wantCode(t, err, 45009)
}

func TestUploadImgAnswersURL(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	res, err := c.Upload(context.Background(), wxmedia.TypeUploadImg, sample("logo.png", 20_000, 900), 20_000, "logo.png")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.URL, "http") {
		t.Errorf("UploadResult %+v: want a URL", res)
	}
}
