package wxmedia

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"io"
	"strings"
	"time"
	"unsafe"
)

// Upload types.
const (
	TypeImage = "image"
	TypeVoice = "voice"
	TypeVideo = "video"
	TypeFile  = "file"  // WeCom and KF
	TypeThumb = "thumb" // Official Account
	// TypeUploadImg posts an image to cgi-bin/media/uploadimg (WeCom), which
	// answers a permanent URL (UploadResult.URL) instead of a media_id.
	TypeUploadImg = "uploadimg"
)

// UploadResult is WeChat's answer to an upload.
type UploadResult struct {
	MediaID string
	Type    string
	// URL is the permanent image URL of a TypeUploadImg upload.
	URL string
	// CreatedAt is the upload time WeChat reported (a string on WeCom, a
	// number on the Official Account; both arrive here as a time).
	CreatedAt time.Time
	// Counters is what the upload did (a failed one's are on its *Error).
	Counters Counters
}

// UploadOption is an option of Upload and UploadFile.
type UploadOption interface{ applyUpload(*uploadOptions) }

type uploadOptions struct {
	progress func(done, total int64)
	filename string
}

type uploadOptionFunc func(*uploadOptions)

func (f uploadOptionFunc) applyUpload(o *uploadOptions) { f(o) }

// WithFilename sets the name UploadFile sends instead of the file's base name.
func WithFilename(name string) UploadOption {
	return uploadOptionFunc(func(o *uploadOptions) { o.filename = name })
}

// Upload sends size bytes read from r as a media of type typ ("image",
// "voice", "video", "file" or "thumb") named filename (UTF-8). The body is
// streamed, never held in memory. r must yield exactly size bytes: a reader
// that ends sooner, or that has more (the library reads past size to tell),
// fails the upload with CodeIO before the body is complete, so nothing is
// stored and nothing is cut silently; wrap r in an io.LimitReader to send
// only its first size bytes. Limits, formats and the type are checked
// locally first, and a rejection there carries the errcode WeChat would have
// answered (for example CodeInvalidImageSize). An error from r stops the
// upload and is returned wrapped in the *Error. Since r cannot be rewound, a
// transient failure is retried only if it came before r was read past its
// first 16 bytes (the ones sniffed for the format).
func (c *Client) Upload(ctx context.Context, typ string, r io.Reader, size int64, filename string, opts ...UploadOption) (*UploadResult, error) {
	if r == nil {
		return nil, invalidArg("Upload: nil io.Reader")
	}
	if size < 0 {
		return nil, invalidArg("Upload: negative size")
	}
	o := uploadOptions{filename: filename}
	for _, opt := range opts {
		opt.applyUpload(&o)
	}
	t := &transfer{r: r, progress: o.progress}
	return c.upload(ctx, typ, t, o, func(u *C.wxm_upload, h C.uintptr_t) C.int32_t {
		return C.wxmgo_upload_set_reader(u, h, C.uint64_t(size))
	})
}

// UploadFile uploads the file at path as a media of type typ, named after the
// file unless WithFilename says otherwise.
func (c *Client) UploadFile(ctx context.Context, typ, path string, opts ...UploadOption) (*UploadResult, error) {
	var o uploadOptions
	for _, opt := range opts {
		opt.applyUpload(&o)
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, invalidArg("path must not contain NUL bytes")
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	t := &transfer{progress: o.progress}
	return c.upload(ctx, typ, t, o, func(u *C.wxm_upload, _ C.uintptr_t) C.int32_t {
		return C.wxm_upload_set_path(u, cpath)
	})
}

// upload creates the handle, gives it its source with setSource, and runs it.
func (c *Client) upload(ctx context.Context, typ string, t *transfer, o uploadOptions,
	setSource func(*C.wxm_upload, C.uintptr_t) C.int32_t) (*UploadResult, error) {
	if err := cancelledBeforeStart(ctx); err != nil {
		return nil, err
	}
	if strings.IndexByte(typ, 0) >= 0 || strings.IndexByte(o.filename, 0) >= 0 {
		return nil, invalidArg("type and filename must not contain NUL bytes")
	}
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	u, err := newUpload(ptr, typ)
	if err != nil {
		return nil, err
	}
	defer C.wxm_upload_free(u)
	var cname *C.char
	if o.filename != "" {
		cname = C.CString(o.filename)
		defer C.free(unsafe.Pointer(cname))
	}

	rc := t.run(ctx, func() { C.wxm_upload_cancel(u) }, func(h C.uintptr_t) C.int32_t {
		if rc := setSource(u, h); rc != 0 {
			return rc
		}
		if cname != nil {
			if rc := C.wxm_upload_set_filename(u, cname); rc != 0 {
				return rc
			}
		}
		if t.progress != nil {
			if rc := C.wxmgo_upload_set_progress(u, h); rc != 0 {
				return rc
			}
		}
		return C.wxm_upload_run(u)
	})
	cc := C.wxmgo_upload_counters(u)
	counters := countersFrom(&cc)
	if rc != 0 {
		return nil, c.withProviderError(withCounters(t.result(ctx, rc, C.GoString(C.wxm_upload_errmsg(u))), counters))
	}
	res := &UploadResult{
		MediaID:   C.GoString(C.wxm_upload_media_id(u)),
		Type:      C.GoString(C.wxm_upload_type(u)),
		URL:       C.GoString(C.wxm_upload_url(u)),
		CreatedAt: time.Unix(int64(C.wxm_upload_created_at(u)), 0),
		Counters:  counters,
	}
	return res, t.result(ctx, rc, "")
}

func newUpload(ptr *C.wxm_client, typ string) (*C.wxm_upload, error) {
	cs := C.CString(typ)
	defer C.free(unsafe.Pointer(cs))
	return callLocked(func() (*C.wxm_upload, C.int32_t) {
		u := C.wxm_upload_new(ptr, cs)
		if u == nil {
			return nil, C.int32_t(CodeInvalidArg)
		}
		return u, 0
	})
}
