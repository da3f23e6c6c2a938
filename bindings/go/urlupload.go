package wxmedia

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"
)

// JobStatus is the state of an upload by URL (the WXM_JOB_* constants of
// wxmedia.h).
type JobStatus int

// The states of an upload-by-URL job.
const (
	JobNone       JobStatus = 0 // not submitted
	JobProcessing JobStatus = 1 // WeChat is fetching the URL
	JobDone       JobStatus = 2 // done: MediaID is set
	JobFailed     JobStatus = 3 // failed: the error carries the job's errcode
)

// String returns "none", "processing", "done" or "failed".
func (s JobStatus) String() string {
	switch s {
	case JobNone:
		return "none"
	case JobProcessing:
		return "processing"
	case JobDone:
		return "done"
	case JobFailed:
		return "failed"
	}
	return fmt.Sprintf("JobStatus(%d)", int(s))
}

// URLUploadResult is the state of an upload by URL.
type URLUploadResult struct {
	// JobID identifies the job at WeChat for 60 minutes; WaitUploadByURL
	// waits on it again (from this process or another).
	JobID string
	// Status is JobDone when the call succeeded.
	Status JobStatus
	// MediaID is the media WeChat made of the file (valid 3 days), once done.
	MediaID string
	// CreatedAt is the media's creation time, once done (else the zero Time).
	CreatedAt time.Time
	// Counters is what this call did (requests sent, retries, time); also
	// on the *Error of a call that failed.
	Counters Counters
}

// URLUploadOption is an option of UploadByURL.
type URLUploadOption interface{ applyURLUpload(*urlUploadOptions) }

type urlUploadOptions struct {
	md5      []md5Source // applied in order: the last one wins
	scene    int64
	setScene bool
}

// md5Source is a WithMD5 (value) or a WithMD5FromFile (a path).
type md5Source struct {
	value    string
	fromFile bool
}

type urlUploadOptionFunc func(*urlUploadOptions)

func (f urlUploadOptionFunc) applyURLUpload(o *urlUploadOptions) { f(o) }

// WithMD5 gives the MD5 of the file at the URL, as 32 hex digits (any
// case). WeChat checks it once it has fetched the file and fails the job
// with CodeMD5Mismatch when it differs. UploadByURL needs WithMD5 or
// WithMD5FromFile.
func WithMD5(hex string) URLUploadOption {
	return urlUploadOptionFunc(func(o *urlUploadOptions) { o.md5 = append(o.md5, md5Source{value: hex}) })
}

// WithMD5FromFile computes the MD5 from a local copy of the file at the URL
// (streamed, never read whole) and checks its size against the limits of the
// upload by URL first: 6 bytes to 200 MiB, else CodeMediaSizeLimit with
// nothing sent.
func WithMD5FromFile(path string) URLUploadOption {
	return urlUploadOptionFunc(func(o *urlUploadOptions) { o.md5 = append(o.md5, md5Source{value: path, fromFile: true}) })
}

// WithScene sets the scene of the upload by URL (default 1, 客户联系入群欢迎语素材,
// the only one WeChat documents).
func WithScene(scene int) URLUploadOption {
	return urlUploadOptionFunc(func(o *urlUploadOptions) { o.scene, o.setScene = int64(scene), true })
}

// UploadByURL has WeChat fetch a file of up to 200 MiB from url (http or
// https, served with Range) and make a media of type typ (TypeVideo or
// TypeFile) named filename of it: the asynchronous upload of WeCom and
// WeChat Customer Service (media/upload_by_url). It submits the job, then
// waits for it, polling media/get_upload_by_url_result with backoff inside
// the library, and returns the media_id once WeChat has it. The MD5 is
// required: WithMD5 or WithMD5FromFile.
//
// The type, filename (1 to 128 bytes), URL (http or https, at most 1024
// bytes), MD5 and platform are checked locally first, with the code WeChat
// would answer (CodeInvalidMediaType, CodeInvalidParameter,
// CodeAPIUnauthorized) and nothing sent. A job that fails returns its
// errcode: CodeRangeNotSupported (the URL's server ignores Range),
// CodeURLFetchFailed (WeChat could not download the URL), CodeMediaSizeLimit
// or CodeMD5Mismatch.
//
// The wait ends at ctx's deadline, or after the library's 10 minutes when
// ctx has none. When ctx ends (cancel or deadline) the error is an *Error
// with Code CodeCancelled that wraps ctx.Err(), and the job goes on at
// WeChat: once the job was submitted, the result is returned together with
// the error, with JobID set and Status JobProcessing, so that
// WaitUploadByURL can wait for it again. The same holds for CodeTimeout and
// network errors met while polling.
func (c *Client) UploadByURL(ctx context.Context, typ, url, filename string, opts ...URLUploadOption) (*URLUploadResult, error) {
	var o urlUploadOptions
	for _, opt := range opts {
		opt.applyURLUpload(&o)
	}
	if o.setScene && (o.scene < 0 || o.scene > math.MaxUint32) {
		return nil, invalidArg("WithScene: scene out of range")
	}
	for _, m := range o.md5 {
		if m.fromFile && m.value == "" {
			return nil, invalidArg("WithMD5FromFile: empty path")
		}
		if strings.IndexByte(m.value, 0) >= 0 {
			return nil, invalidArg("WithMD5 and WithMD5FromFile: NUL byte in the argument")
		}
	}
	return c.urlUpload(ctx, typ, url, filename, "", o)
}

// WaitUploadByURL waits for a job that UploadByURL (in this process or
// another) submitted, given its JobID, for example after a restart or an
// UploadByURL whose context ended; it returns as UploadByURL does. An
// unknown or expired jobid is CodeInvalidParameter (40058).
func (c *Client) WaitUploadByURL(ctx context.Context, jobID string) (*URLUploadResult, error) {
	if jobID == "" {
		return nil, invalidArg("WaitUploadByURL: empty jobid")
	}
	return c.urlUpload(ctx, "", "", "", jobID, urlUploadOptions{})
}

// urlUpload creates the handle, sets it up and runs it: submit and wait, or
// only wait when jobID is set.
func (c *Client) urlUpload(ctx context.Context, typ, url, filename, jobID string, o urlUploadOptions) (*URLUploadResult, error) {
	if err := cancelledBeforeStart(ctx); err != nil {
		return nil, err
	}
	if strings.IndexByte(typ+url+filename+jobID, 0) >= 0 {
		return nil, invalidArg("type, url, filename and jobid must not contain NUL bytes")
	}
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	u, err := newURLUpload(ptr, typ, url, filename)
	if err != nil {
		return nil, err
	}
	defer C.wxm_url_upload_free(u)

	var cjob *C.char
	if jobID != "" {
		cjob = C.CString(jobID)
		defer C.free(unsafe.Pointer(cjob))
	}
	cmd5 := make([]*C.char, len(o.md5))
	for i, m := range o.md5 {
		cmd5[i] = C.CString(m.value)
		defer C.free(unsafe.Pointer(cmd5[i]))
	}
	deadline, hasDeadline := ctx.Deadline()

	t := &transfer{}
	rc := t.run(ctx, func() { C.wxm_url_upload_cancel(u) }, func(C.uintptr_t) C.int32_t {
		if cjob != nil {
			if rc := C.wxm_url_upload_set_jobid(u, cjob); rc != 0 {
				return rc
			}
		}
		for i, m := range o.md5 {
			var rc C.int32_t
			if m.fromFile {
				rc = C.wxm_url_upload_set_md5_from_path(u, cmd5[i])
			} else {
				rc = C.wxm_url_upload_set_md5(u, cmd5[i])
			}
			if rc != 0 {
				return rc
			}
		}
		if o.setScene {
			if rc := C.wxm_url_upload_set_scene(u, C.uint32_t(o.scene)); rc != 0 {
				return rc
			}
		}
		// The timeout is taken after the MD5 of a local file was computed;
		// 0 would mean the library's 10 minutes, so a deadline at hand is 1 ms.
		timeout := C.uint32_t(0)
		if hasDeadline {
			ms := (time.Until(deadline) + time.Millisecond - 1) / time.Millisecond
			timeout = C.uint32_t(min(max(ms, 1), math.MaxUint32))
		}
		if cjob != nil {
			return C.wxm_url_upload_wait(u, timeout)
		}
		return C.wxm_url_upload_run(u, timeout)
	})

	cc := C.wxmgo_url_upload_counters(u)
	counters := countersFrom(&cc)
	var res *URLUploadResult
	if job := C.wxm_url_upload_jobid(u); job != nil {
		res = &URLUploadResult{
			JobID:    C.GoString(job),
			Status:   JobStatus(C.wxm_url_upload_status(u)),
			MediaID:  C.GoString(C.wxm_url_upload_media_id(u)),
			Counters: counters,
		}
		if at := int64(C.wxm_url_upload_created_at(u)); at != 0 {
			res.CreatedAt = time.Unix(at, 0)
		}
	}
	if rc == 0 {
		return res, nil
	}
	msg := C.GoString(C.wxm_url_upload_errmsg(u))
	// The library's wait was given ctx's deadline, so its WXM_E_TIMEOUT and
	// ctx's timer (which cancels) race: either way, report ctx's end.
	deadlinePassed := Code(rc) == CodeTimeout && hasDeadline && !time.Now().Before(deadline)
	if Code(rc) == CodeTimeout && (deadlinePassed || ctx.Err() != nil) {
		rc = C.int32_t(CodeCancelled)
	}
	e := t.result(ctx, rc, msg).(*Error)
	e.Counters = &counters
	if deadlinePassed && e.cause == nil {
		e.cause = context.DeadlineExceeded
	}
	if res != nil && res.Status == JobProcessing {
		e.Message += fmt.Sprintf(" (job %s goes on: wait for it with WaitUploadByURL)", res.JobID)
	}
	return res, c.withProviderError(e)
}

func newURLUpload(ptr *C.wxm_client, typ, url, filename string) (*C.wxm_url_upload, error) {
	ctyp, curl, cname := C.CString(typ), C.CString(url), C.CString(filename)
	defer C.free(unsafe.Pointer(ctyp))
	defer C.free(unsafe.Pointer(curl))
	defer C.free(unsafe.Pointer(cname))
	return callLocked(func() (*C.wxm_url_upload, C.int32_t) {
		u := C.wxm_url_upload_new(ptr, ctyp, curl, cname)
		if u == nil {
			return nil, C.int32_t(CodeInvalidArg)
		}
		return u, 0
	})
}
