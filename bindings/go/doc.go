// Package wxmedia downloads and uploads WeChat temporary media (临时素材) —
// WeCom, WeChat Customer Service, Official Account and Mini Program — through
// libwxmedia, the Rust implementation shared with the C and Python hosts.
//
// Downloads use aligned Range requests (at most 20 MiB each, 16-byte aligned
// for encrypted media), optionally over several connections, and stream into
// an io.Writer in order, or into a file that is renamed into place only when
// complete. Uploads stream a multipart body from an io.Reader or a file after
// checking the platform's limits locally. On WeCom and WeChat Customer
// Service, UploadByURL has WeChat fetch a file of up to 200 MiB from a URL
// and waits for the job. Transient failures are retried and expired tokens
// refreshed inside the library.
//
// A Client is safe for concurrent use. Every transfer takes a
// context.Context; cancelling it stops the transfer promptly. Errors are
// *Error values carrying a Code: WeChat's errcode or one of the library's
// own. Match them with errors.Is against the Err* sentinels or a Code:
//
//	if errors.Is(err, wxmedia.ErrMediaNotFound) { ... }   // 40007, 41006
//	var e *wxmedia.Error
//	if errors.As(err, &e) { log.Print(e.Code, e.Message) }
//
// # Object storage
//
// DownloadToObject sends a media straight into an S3-compatible object
// store as a multipart upload, without touching a disk. Zero fields of
// ObjectStore take the library's defaults, which read the environment as
// the AWS tools do:
//
//	store := wxmedia.ObjectStore{Endpoint: "http://127.0.0.1:9000", Region: "us-east-1"}
//	info, err := client.DownloadToObject(ctx, mediaID, store, "media", "in/"+mediaID)
//	if errors.Is(err, wxmedia.ErrObjectStoreAuth) { ... } // never retried
//
// # Events and counters
//
// Config.Logger (a *slog.Logger; nil is silent) receives what transfers do
// as records with typed attributes: each HTTP request at slog.LevelDebug;
// retries, token fetches and refreshes, resumes, fallbacks and each
// transfer's start and end at LevelInfo or LevelWarn. Config.OnEvent
// receives the same as typed Event values. MediaInfo, UploadResult and
// URLUploadResult carry the transfer's Counters (requests, retries, bytes,
// token refreshes, resume offset, elapsed time); a failed transfer's are on
// its *Error:
//
//	var e *wxmedia.Error
//	if errors.As(err, &e) && e.Counters != nil { log.Print(e.Counters.Retries) }
//
// # Building
//
// The package links lib/<GOOS>_<GOARCH>/libwxmedia.a statically; run
// `make go-lib` in the repository root to build and copy it there (see
// README.md). With the build tag wxmedia_custom the package adds no linker
// flags and links whatever CGO_LDFLAGS name.
package wxmedia
