package wxmedia

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unsafe"
)

// Addressing is how object URLs name the bucket.
type Addressing int

const (
	// AddressingDefault is path style when an endpoint is set (here or in
	// the environment: what S3-compatible servers expect), virtual-hosted
	// on AWS.
	AddressingDefault Addressing = iota
	// AddressingPath puts the bucket in the path: endpoint/bucket/key.
	AddressingPath
	// AddressingVirtualHosted puts it in the host: bucket.endpoint/key.
	AddressingVirtualHosted
)

// ObjectStore is an S3-compatible object store for DownloadToObject. Every
// zero value means the library's default, which for the endpoint, region
// and credentials is the environment's as the AWS tools read it
// (AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL, AWS_REGION/AWS_DEFAULT_REGION else
// us-east-1, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
// read by the library when a transfer starts. Requests go through the
// Client's connections: its TLS settings, CAFile and timeouts apply.
//
// Its String, GoString and LogValue methods never show SecretKey or
// SessionToken, so an ObjectStore may be printed or logged.
type ObjectStore struct {
	// Endpoint is the store's URL: "https://s3.example.com",
	// "http://127.0.0.1:9000". Default: https://s3.REGION.amazonaws.com.
	Endpoint string
	// Region is the region the requests are signed for.
	Region string
	// AccessKey and SecretKey are set together, or neither (then both come
	// from the environment); SessionToken, of temporary credentials, only
	// with them.
	AccessKey, SecretKey, SessionToken string
	// PathStyle is how URLs name the bucket (AddressingDefault: path style
	// with an endpoint, virtual-hosted on AWS).
	PathStyle Addressing
	// KeepPartsOnFailure makes a failed or cancelled DownloadToObject keep
	// its multipart upload and parts, so that a later one for the same
	// media and key resumes it. By default it aborts the upload, leaving
	// nothing behind. (A killed process cannot abort: the next run for the
	// same media and key resumes its upload.)
	KeepPartsOnFailure bool
	// PartSize is the size of the multipart upload's parts, a multiple of
	// 16 from 5 MiB to 512 MiB (default 8 MiB). A transfer holds about
	// Config.Parallelism × PartSize in memory. A resume needs the part size
	// of the run it resumes.
	PartSize int64
}

const redacted = "[REDACTED]"

// redactedCopy is s with its secrets replaced by a marker when set.
func (s ObjectStore) redactedCopy() ObjectStore {
	if s.SecretKey != "" {
		s.SecretKey = redacted
	}
	if s.SessionToken != "" {
		s.SessionToken = redacted
	}
	return s
}

// String describes the store without its secret or session token.
func (s ObjectStore) String() string {
	type plain ObjectStore // no methods: no recursion into String
	return fmt.Sprintf("%+v", plain(s.redactedCopy()))
}

// GoString is String's counterpart for %#v.
func (s ObjectStore) GoString() string {
	type plain ObjectStore
	return fmt.Sprintf("%#v", plain(s.redactedCopy()))
}

// LogValue lets log/slog log the store without its secret or session token.
func (s ObjectStore) LogValue() slog.Value {
	r := s.redactedCopy()
	return slog.GroupValue(
		slog.String("endpoint", r.Endpoint),
		slog.String("region", r.Region),
		slog.String("access_key", r.AccessKey),
		slog.String("secret_key", r.SecretKey),
		slog.String("session_token", r.SessionToken),
		slog.Int("path_style", int(r.PathStyle)),
		slog.Bool("keep_parts_on_failure", r.KeepPartsOnFailure),
		slog.Int64("part_size", r.PartSize),
	)
}

// newCStore builds the library's store; the caller frees it with
// wxm_objstore_free.
func (s ObjectStore) newCStore() (*C.wxm_objstore, error) {
	st := C.wxm_objstore_new()
	if st == nil {
		return nil, &Error{Code: CodePanic, Message: "wxm_objstore_new failed"}
	}
	set := &setter{}
	if s.Endpoint != "" {
		set.str("ObjectStore.Endpoint", s.Endpoint, func(v *C.char) C.int32_t { return C.wxm_objstore_set_endpoint(st, v) })
	}
	if s.Region != "" {
		set.str("ObjectStore.Region", s.Region, func(v *C.char) C.int32_t { return C.wxm_objstore_set_region(st, v) })
	}
	if s.AccessKey != "" || s.SecretKey != "" || s.SessionToken != "" {
		set.check(s.AccessKey != "" && s.SecretKey != "", "ObjectStore: set AccessKey and SecretKey together (or neither, for the environment's)")
		set.check(strings.IndexByte(s.AccessKey+s.SecretKey+s.SessionToken, 0) < 0, "ObjectStore credentials must not contain NUL bytes")
		set.call("ObjectStore credentials", func() C.int32_t {
			key, secret := C.CString(s.AccessKey), C.CString(s.SecretKey)
			defer C.free(unsafe.Pointer(key))
			defer C.free(unsafe.Pointer(secret))
			var token *C.char
			if s.SessionToken != "" {
				token = C.CString(s.SessionToken)
				defer C.free(unsafe.Pointer(token))
			}
			return C.wxm_objstore_set_credentials(st, key, secret, token)
		})
	}
	switch s.PathStyle {
	case AddressingDefault:
	case AddressingPath, AddressingVirtualHosted:
		enable := C.int32_t(0)
		if s.PathStyle == AddressingPath {
			enable = 1
		}
		set.call("ObjectStore.PathStyle", func() C.int32_t { return C.wxm_objstore_set_path_style(st, enable) })
	default:
		set.check(false, "ObjectStore.PathStyle: unknown Addressing")
	}
	if s.KeepPartsOnFailure {
		set.call("ObjectStore.KeepPartsOnFailure", func() C.int32_t { return C.wxm_objstore_set_keep_parts_on_failure(st, 1) })
	}
	if s.PartSize != 0 {
		set.check(s.PartSize > 0, "ObjectStore.PartSize must not be negative")
		set.call("ObjectStore.PartSize", func() C.int32_t { return C.wxm_objstore_set_part_size(st, C.uint64_t(s.PartSize)) })
	}
	if set.err != nil {
		C.wxm_objstore_free(st)
		return nil, set.err
	}
	return st, nil
}

// DownloadToObject fetches the media into object key of bucket in store,
// without touching a disk: the Range chunks become the parts of an S3
// multipart upload, up to Config.Parallelism fetched and uploaded at once,
// each checked by its Content-MD5 (a media of at most one part is one
// PutObject). The object, with the media's Content-Type and filename,
// appears only when complete.
//
// An upload of the same media (and part size) to the same key that an
// earlier run kept (ObjectStore.KeepPartsOnFailure, or a killed process) is
// resumed: only the parts it lacks are fetched, and Counters.ResumedFrom
// tells how many bytes it held. A failed or cancelled run aborts its upload
// unless KeepPartsOnFailure is set.
//
// Errors are as DownloadFile's, plus CodeObjectStoreAuth (credentials
// refused, not retried; ErrObjectStoreAuth), CodeNoSuchBucket
// (ErrNoSuchBucket), CodeObjectStore (another answer of the store, after
// retries; ErrObjectStore) and CodeInvalidArg (no credentials anywhere, an
// empty key). No message holds the secret. WithProgress applies; WithStart
// does not.
func (c *Client) DownloadToObject(ctx context.Context, mediaID string, store ObjectStore, bucket, key string, opts ...DownloadOption) (*MediaInfo, error) {
	var o downloadOptions
	for _, opt := range opts {
		opt.applyDownload(&o)
	}
	if o.start != 0 {
		return nil, invalidArg("DownloadToObject resumes by itself: WithStart is for Download")
	}
	if strings.IndexByte(bucket, 0) >= 0 || strings.IndexByte(key, 0) >= 0 {
		return nil, invalidArg("bucket and key must not contain NUL bytes")
	}
	if err := cancelledBeforeStart(ctx); err != nil {
		return nil, err
	}
	st, err := store.newCStore()
	if err != nil {
		return nil, err
	}
	defer C.wxm_objstore_free(st)
	cbucket, ckey := C.CString(bucket), C.CString(key)
	defer C.free(unsafe.Pointer(cbucket))
	defer C.free(unsafe.Pointer(ckey))
	t := &transfer{progress: o.progress}
	return c.download(ctx, mediaID, t, o, target{store: st, bucket: cbucket, key: ckey})
}
