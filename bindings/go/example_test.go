package wxmedia_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

// A WeCom client that fetches and refreshes its own token, downloading into a
// file and uploading one.
func Example() {
	client, err := wxmedia.NewClient(wxmedia.Config{
		Platform: wxmedia.PlatformWeCom,
		CorpID:   os.Getenv("WECOM_CORPID"),
		Secret:   os.Getenv("WECOM_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	info, err := client.DownloadFile(ctx, "MEDIA_ID", "/tmp/media.bin")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d bytes, %s\n", info.Filename, info.Size, info.ContentType)

	res, err := client.UploadFile(ctx, wxmedia.TypeFile, "/tmp/报告.pdf")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("uploaded as", res.MediaID)
}

// Streaming a media into any io.Writer, with progress, over two connections
// of 4 MiB Range requests.
func ExampleClient_Download() {
	client, err := wxmedia.NewClient(wxmedia.Config{
		AccessToken: os.Getenv("WECOM_ACCESS_TOKEN"),
		ChunkSize:   4 << 20,
		Parallelism: 2,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.Download(context.Background(), "MEDIA_ID", os.Stdout,
		wxmedia.WithProgress(func(done, total int64) {
			fmt.Fprintf(os.Stderr, "\r%d / %d bytes", done, total)
		}))
	if err != nil {
		log.Fatal(err)
	}
}

// A media straight into an S3-compatible bucket, four parts at a time. The
// credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, as the
// AWS tools read them; the store may be logged, its secret never is.
func ExampleClient_DownloadToObject() {
	client, err := wxmedia.NewClient(wxmedia.Config{
		AccessToken: os.Getenv("WECOM_ACCESS_TOKEN"),
		ChunkSize:   8 << 20,
		Parallelism: 4,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	store := wxmedia.ObjectStore{Endpoint: "https://s3.example.com", Region: "eu-west-1"}
	slog.Info("storing", "store", store)
	info, err := client.DownloadToObject(context.Background(), "MEDIA_ID", store, "media", "wecom/MEDIA_ID")
	switch {
	case errors.Is(err, wxmedia.ErrObjectStoreAuth), errors.Is(err, wxmedia.ErrNoSuchBucket):
		log.Fatalf("fix the store's settings: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	log.Printf("%d bytes (%s) stored in %v", info.Size, info.ContentType, info.Counters.Elapsed)
}

// Telling WeChat's errcodes and the library's own failures apart.
func ExampleError() {
	client, err := wxmedia.NewClient(wxmedia.Config{AccessToken: os.Getenv("WECOM_ACCESS_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.DownloadFile(context.Background(), "EXPIRED_MEDIA_ID", "/tmp/x")
	var e *wxmedia.Error
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Println("took too long")
	case errors.Is(err, wxmedia.ErrMediaNotFound):
		fmt.Println("the media_id is unknown or older than 3 days")
	case errors.Is(err, wxmedia.ErrTokenRejected):
		fmt.Println("the access_token was refused")
	case errors.As(err, &e):
		fmt.Println("errcode", e.Code, e.Message)
	default:
		log.Fatal(err)
	}
}

// Uploading from any io.Reader whose size is known, e.g. an object store
// stream; the body is never held in memory.
func ExampleClient_Upload() {
	client, err := wxmedia.NewClient(wxmedia.Config{
		Platform:    wxmedia.PlatformOfficial,
		AccessToken: os.Getenv("OA_ACCESS_TOKEN"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	f, err := os.Open("/tmp/voice.mp3")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Upload(context.Background(), wxmedia.TypeVoice, f, st.Size(), "问候.mp3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.MediaID, res.CreatedAt)
}

// Having WeChat fetch a large video from a URL that serves Range (WeCom and
// WeChat Customer Service), with the MD5 of a local copy; if the wait ends
// first, the job goes on and can be waited for again.
func ExampleClient_UploadByURL() {
	client, err := wxmedia.NewClient(wxmedia.Config{AccessToken: os.Getenv("WECOM_ACCESS_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := client.UploadByURL(ctx, wxmedia.TypeVideo, "https://cdn.example.com/launch.mp4", "发布会.mp4",
		wxmedia.WithMD5FromFile("/data/launch.mp4"))
	if errors.Is(err, context.DeadlineExceeded) && res != nil {
		// Still processing at WeChat: wait again later, even from another
		// process, with the jobid (valid 60 minutes).
		res, err = client.WaitUploadByURL(context.Background(), res.JobID)
	}
	var e *wxmedia.Error
	if errors.As(err, &e) && e.Code == wxmedia.CodeRangeNotSupported {
		log.Fatal("the CDN must serve Range requests")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.MediaID, res.CreatedAt)
}

// Retries, token refreshes and resumes logged as JSON through log/slog (each
// request too, at Debug), and what a download did, whatever its outcome.
func ExampleConfig_logger() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	client, err := wxmedia.NewClient(wxmedia.Config{
		AccessToken: os.Getenv("WECOM_ACCESS_TOKEN"),
		Logger:      logger.With("component", "wechat-media"),
		OnEvent: func(ev wxmedia.Event) {
			if ev.Kind == wxmedia.EventRetryScheduled {
				retries.Add(1)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	info, err := client.DownloadFile(context.Background(), "MEDIA_ID", "/tmp/media.bin")
	var e *wxmedia.Error
	switch {
	case errors.As(err, &e) && e.Counters != nil:
		log.Printf("failed after %d requests, %d retries, %v: %v", e.Counters.Requests, e.Counters.Retries, e.Counters.Elapsed, err)
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("%d bytes in %v, resumed from %d", info.Size, info.Counters.Elapsed, info.Counters.ResumedFrom)
	}
}

var retries atomic.Int64 // or an expvar.Int
