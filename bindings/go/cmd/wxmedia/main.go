// Command wxmedia downloads and uploads WeChat temporary media (临时素材)
// from the command line, through the wxmedia Go package.
//
//	wxmedia get    [flags] MEDIA_ID            save under the server's file name (or -o PATH, -o - for stdout)
//	wxmedia upload [flags] -type TYPE FILE     print {"media_id", "type", "created_at"} as JSON
//	wxmedia upload-by-url [flags] -type video|file -md5 HEX|-local FILE URL
//	                                           WeCom/kf: WeChat fetches URL; print {"jobid", "media_id", "created_at"}
//	wxmedia upload-by-url [flags] -jobid JOBID wait for a job submitted before
//	wxmedia demo   [flags]                     upload a file it makes, download it back in Range chunks, verify
//	wxmedia version
//
// Every subcommand takes -base-url, -platform, -token or -corpid/-secret;
// the environment variables WXMEDIA_BASE_URL, WXMEDIA_PLATFORM,
// WXMEDIA_ACCESS_TOKEN, WXMEDIA_CORPID and WXMEDIA_SECRET give their defaults.
// A progress bar is drawn on stderr when it is a terminal.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	neturl "net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "get":
		err = get(ctx, args)
	case "upload":
		err = upload(ctx, args)
	case "upload-by-url":
		err = uploadByURL(ctx, args)
	case "demo":
		err = demo(ctx, args)
	case "version":
		fmt.Println("wxmedia", wxmedia.Version())
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "wxmedia: unknown command %q\n", cmd)
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wxmedia:", err)
		if errors.Is(err, context.Canceled) { // Ctrl-C or SIGTERM; -timeout exits 1
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  wxmedia get    [flags] MEDIA_ID         save the media (-o PATH, -o - for stdout)
  wxmedia upload [flags] -type TYPE FILE  upload FILE, print the media_id as JSON
  wxmedia upload-by-url [flags] -type video|file (-md5 HEX | -local FILE) URL
                                          WeCom/kf: have WeChat fetch URL (Range, up to 200 MiB),
                                          wait for the job, print its media_id as JSON
  wxmedia upload-by-url [flags] -jobid JOBID
                                          wait for a job submitted before
  wxmedia demo   [flags]                  upload a file, download it back in Range chunks, verify
  wxmedia version
Run "wxmedia COMMAND -h" for the flags.
`)
	os.Exit(2)
}

// clientFlags are the flags every subcommand takes.
type clientFlags struct {
	cfg      wxmedia.Config
	platform string
	timeout  time.Duration
	quiet    bool
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newFlagSet registers the common flags; cf's chunk size and parallelism are
// their defaults.
func newFlagSet(name, args string, cf *clientFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: wxmedia %s [flags] %s\n", name, args)
		fs.PrintDefaults()
	}
	fs.StringVar(&cf.cfg.BaseURL, "base-url", env("WXMEDIA_BASE_URL", ""), "API base URL, e.g. http://127.0.0.1:8080 for the emulator (env WXMEDIA_BASE_URL; default: the platform's host)")
	fs.StringVar(&cf.platform, "platform", env("WXMEDIA_PLATFORM", "wecom"), "wecom, kf, official or miniprogram (env WXMEDIA_PLATFORM)")
	fs.StringVar(&cf.cfg.AccessToken, "token", env("WXMEDIA_ACCESS_TOKEN", ""), "access_token (env WXMEDIA_ACCESS_TOKEN)")
	fs.StringVar(&cf.cfg.CorpID, "corpid", env("WXMEDIA_CORPID", ""), "corpid or appid, to fetch tokens (env WXMEDIA_CORPID)")
	fs.StringVar(&cf.cfg.Secret, "secret", env("WXMEDIA_SECRET", ""), "corpsecret or appsecret (env WXMEDIA_SECRET, preferred over the flag)")
	fs.Int64Var(&cf.cfg.ChunkSize, "chunk-size", cf.cfg.ChunkSize, "bytes per Range request, a multiple of 16 (0: the library's default, 20 MiB)")
	fs.IntVar(&cf.cfg.Parallelism, "parallel", cf.cfg.Parallelism, "connections per download (0: the library's default)")
	fs.DurationVar(&cf.timeout, "timeout", 0, "give up after this long (default: never)")
	fs.BoolVar(&cf.quiet, "q", false, "no progress bar")
	// -h and usage errors print the defaults: never those taken from the
	// environment's secrets.
	fs.Lookup("token").DefValue = ""
	fs.Lookup("secret").DefValue = ""
	return fs
}

// client creates the Client and the context of the command.
func (cf *clientFlags) client(ctx context.Context) (*wxmedia.Client, context.Context, context.CancelFunc, error) {
	p, err := wxmedia.ParsePlatform(cf.platform)
	if err != nil {
		return nil, nil, nil, err
	}
	cf.cfg.Platform = p
	c, err := wxmedia.NewClient(cf.cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	cancel := context.CancelFunc(func() {})
	if cf.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, cf.timeout)
	}
	return c, ctx, cancel, nil
}

func get(ctx context.Context, args []string) error {
	var cf clientFlags
	fs := newFlagSet("get", "MEDIA_ID", &cf)
	out := fs.String("o", "", `output path, "-" for stdout (default: the server's file name in the current directory)`)
	force := fs.Bool("f", false, "overwrite an existing file")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	mediaID := fs.Arg(0)
	c, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	bar := newProgressBar("get "+mediaID, cf.quiet)

	if *out == "-" {
		info, err := c.Download(ctx, mediaID, os.Stdout, wxmedia.WithProgress(bar.update))
		bar.finish(err)
		if err == nil {
			fmt.Fprintf(os.Stderr, "%s: %d bytes, %s\n", info.Filename, info.Size, info.ContentType)
		}
		return err
	}
	path := *out
	if path == "" {
		// The server's name is known only afterwards: download under a name
		// of our own (the library resumes it if the command is run again),
		// then rename.
		path = ".wxmedia-" + safeName(mediaID) + ".download"
	} else if !*force {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists (use -f to overwrite)", path)
		}
	}
	info, err := c.DownloadFile(ctx, mediaID, path, wxmedia.WithProgress(bar.update))
	bar.finish(err)
	if err != nil {
		return err
	}
	if *out == "" {
		name := safeName(info.Filename)
		if name == "" {
			name = safeName(mediaID)
		}
		if _, err := os.Stat(name); err == nil && !*force {
			return fmt.Errorf("%s exists (use -f to overwrite); the media is in %s", name, path)
		}
		if err := os.Rename(path, name); err != nil {
			return err
		}
		path = name
	}
	fmt.Fprintf(os.Stderr, "saved %s: %d bytes, %s\n", path, info.Size, info.ContentType)
	return nil
}

// safeName reduces a server-given name to a plain file name in the current
// directory.
func safeName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == ".." || name == "/" {
		return ""
	}
	return name
}

func upload(ctx context.Context, args []string) error {
	var cf clientFlags
	fs := newFlagSet("upload", "-type TYPE FILE", &cf)
	typ := fs.String("type", "", "image, voice, video, file or thumb")
	name := fs.String("name", "", "file name to send (default: FILE's base name)")
	fs.Parse(args)
	if fs.NArg() != 1 || *typ == "" {
		fs.Usage()
		os.Exit(2)
	}
	c, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	bar := newProgressBar("upload "+filepath.Base(fs.Arg(0)), cf.quiet)
	opts := []wxmedia.UploadOption{wxmedia.WithProgress(bar.update)}
	if *name != "" {
		opts = append(opts, wxmedia.WithFilename(*name))
	}
	res, err := c.UploadFile(ctx, *typ, fs.Arg(0), opts...)
	bar.finish(err)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"media_id": res.MediaID, "type": res.Type, "created_at": res.CreatedAt.Unix(),
	})
}

func uploadByURL(ctx context.Context, args []string) error {
	var cf clientFlags
	fs := newFlagSet("upload-by-url", "-type video|file (-md5 HEX | -local FILE) URL\n       wxmedia upload-by-url [flags] -jobid JOBID", &cf)
	typ := fs.String("type", "", "video or file")
	filename := fs.String("filename", "", "file name WeChat shows, 1 to 128 bytes (default: the base name of -local, else of the URL's path)")
	md5 := fs.String("md5", "", "MD5 of the file at URL, 32 hex digits")
	local := fs.String("local", "", "a local copy of the file at URL, to compute the MD5 from")
	scene := fs.Int("scene", 0, "scene (0: the library's default, 1)")
	jobID := fs.String("jobid", "", "wait for this job (submitted before, e.g. by a run that timed out) instead of submitting one")
	fs.Lookup("timeout").Usage = "stop waiting after this long; the job goes on, and -jobid waits for it again (default: the library's 10 minutes)"
	fs.Parse(args)
	bad := func(msg string) {
		fmt.Fprintln(os.Stderr, "wxmedia upload-by-url:", msg)
		fs.Usage()
		os.Exit(2)
	}
	if *jobID != "" {
		if fs.NArg() != 0 || *typ != "" || *md5 != "" || *local != "" || *filename != "" || *scene != 0 {
			bad("-jobid takes no URL, -type, -md5, -local, -filename or -scene")
		}
	} else {
		if fs.NArg() != 1 || *typ == "" {
			bad("want -type and one URL")
		}
		if (*md5 == "") == (*local == "") {
			bad("give exactly one of -md5 and -local")
		}
	}
	c, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()

	var res *wxmedia.URLUploadResult
	if *jobID != "" {
		res, err = c.WaitUploadByURL(ctx, *jobID)
	} else {
		url := fs.Arg(0)
		var opts []wxmedia.URLUploadOption
		if *local != "" {
			opts = append(opts, wxmedia.WithMD5FromFile(*local))
		} else {
			opts = append(opts, wxmedia.WithMD5(*md5))
		}
		if *scene != 0 {
			opts = append(opts, wxmedia.WithScene(*scene))
		}
		name := *filename
		if name == "" {
			name = defaultURLName(*local, url)
		}
		if !cf.quiet && isTerminal(os.Stderr) {
			fmt.Fprintf(os.Stderr, "upload-by-url %s: submitting, then waiting for WeChat to fetch it\n", name)
		}
		res, err = c.UploadByURL(ctx, *typ, url, name, opts...)
	}
	if err != nil {
		if res != nil && res.Status == wxmedia.JobProcessing {
			// The job goes on: print its id for scripts, and how to wait again.
			json.NewEncoder(os.Stdout).Encode(map[string]any{"jobid": res.JobID, "status": res.Status.String()})
			fmt.Fprintf(os.Stderr, "wxmedia: job %s goes on at WeChat (for 60 minutes); wait for it with: wxmedia upload-by-url -jobid %s\n", res.JobID, res.JobID)
		}
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"jobid": res.JobID, "media_id": res.MediaID, "created_at": res.CreatedAt.Unix(),
	})
}

// defaultURLName is the file name upload-by-url sends without -filename:
// the local copy's, else the last segment of the URL's path.
func defaultURLName(local, rawURL string) string {
	if local != "" {
		return filepath.Base(local)
	}
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return ""
	}
	return safeName(path.Base(u.Path))
}
