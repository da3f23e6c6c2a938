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
	"unsafe"
)

// MediaInfo describes a downloaded media.
type MediaInfo struct {
	MediaID string
	// Size is the media's total size in bytes (from Content-Range).
	Size int64
	// ContentType is the server's Content-Type.
	ContentType string
	// Filename comes from Content-Disposition (filename* before filename),
	// and may hold any UTF-8 text.
	Filename string
	// VideoURL is set when the server answered a video_url (Official
	// Account and Mini Program videos); the bytes were fetched from it.
	VideoURL string
	// Counters is what the download did (a failed one's are on its *Error).
	Counters Counters
}

// Option is an option for both downloads and uploads.
type Option interface {
	DownloadOption
	UploadOption
}

// DownloadOption is an option of Download and DownloadFile.
type DownloadOption interface{ applyDownload(*downloadOptions) }

type downloadOptions struct {
	progress func(done, total int64)
	start    int64
	hdVoice  bool
}

type downloadOptionFunc func(*downloadOptions)

func (f downloadOptionFunc) applyDownload(o *downloadOptions) { f(o) }

type progressOption func(done, total int64)

func (p progressOption) applyDownload(o *downloadOptions) { o.progress = p }
func (p progressOption) applyUpload(o *uploadOptions)     { o.progress = p }

// WithProgress calls fn as bytes are transferred, with the bytes done so far
// and the total (0 while unknown). fn runs on the goroutine that called
// Download or Upload, never concurrently with itself; it should return
// quickly. To stop a transfer, cancel its Context.
func WithProgress(fn func(done, total int64)) Option { return progressOption(fn) }

// WithStart makes Download start at offset instead of 0, for a host that
// manages resumption itself: the writer receives the bytes from offset on.
// The offset need not be aligned (the library fetches from the 16-byte
// aligned floor and skips the head). DownloadFile resumes by itself and
// rejects this option.
func WithStart(offset int64) DownloadOption {
	return downloadOptionFunc(func(o *downloadOptions) { o.start = offset })
}

// WithHDVoice fetches the high-definition (speex, 16 kHz) recording of a
// voice media from cgi-bin/media/get/jssdk instead of cgi-bin/media/get.
func WithHDVoice() DownloadOption {
	return downloadOptionFunc(func(o *downloadOptions) { o.hdVoice = true })
}

// Download fetches the media into w, in order, with aligned Range requests
// (in parallel when Config.Parallelism > 1), retrying transient failures and
// refreshing the token as needed. An error from w stops the transfer and is
// returned wrapped in an *Error with Code CodeAborted. If ctx ends, the
// transfer stops promptly and the error wraps ctx.Err().
func (c *Client) Download(ctx context.Context, mediaID string, w io.Writer, opts ...DownloadOption) (*MediaInfo, error) {
	if w == nil {
		return nil, invalidArg("Download: nil io.Writer")
	}
	var o downloadOptions
	for _, opt := range opts {
		opt.applyDownload(&o)
	}
	if o.start < 0 {
		return nil, invalidArg("WithStart: negative offset")
	}
	t := &transfer{w: w, next: uint64(o.start), progress: o.progress}
	return c.download(ctx, mediaID, t, o, target{})
}

// DownloadFile fetches the media into the file at path. It writes a sibling
// temporary file and renames it into place only once every byte is verified,
// so an existing file at path is never damaged by a failed download; an
// interrupted download resumes from the temporary file on the next call for
// the same media_id.
func (c *Client) DownloadFile(ctx context.Context, mediaID, path string, opts ...DownloadOption) (*MediaInfo, error) {
	var o downloadOptions
	for _, opt := range opts {
		opt.applyDownload(&o)
	}
	if o.start != 0 {
		return nil, invalidArg("DownloadFile resumes by itself: WithStart is for Download")
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, invalidArg("path must not contain NUL bytes")
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	t := &transfer{progress: o.progress}
	return c.download(ctx, mediaID, t, o, target{path: cpath})
}

// target is where a download goes: the object store when store is set, else
// the file at path when that is set, else the transfer's io.Writer.
type target struct {
	path        *C.char
	store       *C.wxm_objstore
	bucket, key *C.char
}

// download creates the handle and runs it into dst. The C side is three
// calls (wxmgo_download_new, _run, _get_info: the results and counters,
// also of a failed run) and the free.
func (c *Client) download(ctx context.Context, mediaID string, t *transfer, o downloadOptions, dst target) (*MediaInfo, error) {
	if err := cancelledBeforeStart(ctx); err != nil {
		return nil, err
	}
	if strings.IndexByte(mediaID, 0) >= 0 {
		return nil, invalidArg("media_id must not contain NUL bytes")
	}
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	d, err := newDownload(ptr, mediaID)
	if err != nil {
		return nil, err
	}
	defer C.wxm_download_free(d)

	hdVoice, progress := C.int32_t(0), C.int32_t(0)
	if o.hdVoice {
		hdVoice = 1
	}
	if t.progress != nil {
		progress = 1
	}
	rc := t.run(ctx, func() { C.wxm_download_cancel(d) }, func(h C.uintptr_t) C.int32_t {
		return C.wxmgo_download_run(d, h, C.uint64_t(o.start), hdVoice, progress, dst.path, dst.store, dst.bucket, dst.key)
	})
	in := C.wxmgo_download_get_info(d)
	counters := countersFrom(&in.counters)
	if rc != 0 {
		return nil, c.withProviderError(withCounters(t.result(ctx, rc, C.GoString(C.wxm_download_errmsg(d))), counters))
	}
	info := &MediaInfo{
		MediaID:     mediaID,
		Size:        int64(in.size),
		ContentType: C.GoStringN(in.content_type, C.int(in.content_type_len)),
		Filename:    C.GoStringN(in.filename, C.int(in.filename_len)),
		VideoURL:    C.GoStringN(in.video_url, C.int(in.video_url_len)),
		Counters:    counters,
	}
	return info, t.result(ctx, rc, "")
}

// newDownload creates the handle. The fast way hands C the media_id's bytes
// as they are; only when that fails (an empty or non-UTF-8 media_id) is the
// call made again the plain way, on a locked thread, for the library's
// thread-local message.
func newDownload(ptr *C.wxm_client, mediaID string) (*C.wxm_download, error) {
	if d := C.wxmgo_download_new(ptr, (*C.char)(unsafe.Pointer(unsafe.StringData(mediaID))), C.size_t(len(mediaID))); d != nil {
		return d, nil
	}
	cs := C.CString(mediaID)
	defer C.free(unsafe.Pointer(cs))
	return callLocked(func() (*C.wxm_download, C.int32_t) {
		d := C.wxm_download_new(ptr, cs)
		if d == nil {
			return nil, C.int32_t(CodeInvalidArg)
		}
		return d, 0
	})
}
