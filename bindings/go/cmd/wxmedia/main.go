// Command wxmedia downloads and uploads WeChat temporary media (临时素材)
// from the command line, through the wxmedia Go package.
//
//	wxmedia get    [flags] MEDIA_ID            save under the server's file name (or -o PATH, -o - for stdout)
//	wxmedia upload [flags] -type TYPE FILE     print {"media_id", "type", "created_at"} as JSON
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
	"os"
	"os/signal"
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
		var e *wxmedia.Error
		if errors.As(err, &e) && e.Code == wxmedia.ErrCancelled {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  wxmedia get    [flags] MEDIA_ID         save the media (-o PATH, -o - for stdout)
  wxmedia upload [flags] -type TYPE FILE  upload FILE, print the media_id as JSON
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
