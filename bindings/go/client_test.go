package wxmedia_test

import (
	"context"
	"io"
	"os"
	"regexp"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

func TestVersionMatchesCargo(t *testing.T) {
	toml, err := os.ReadFile("../../Cargo.toml")
	if err != nil {
		t.Skip("not in the wxmedia repository:", err)
	}
	m := regexp.MustCompile(`(?s)\[package\].*?\nversion\s*=\s*"([^"]+)"`).FindSubmatch(toml)
	if m == nil {
		t.Fatal("no [package] version in Cargo.toml")
	}
	if v := wxmedia.Version(); v != string(m[1]) {
		t.Errorf("Version() = %q, Cargo.toml says %q", v, m[1])
	}
}

func TestErrorText(t *testing.T) {
	unknown := wxmedia.ErrorText(-999_999)
	for code := wxmedia.CodeState; code <= wxmedia.CodeInvalidArg; code++ {
		if text := wxmedia.ErrorText(code); text == "" || text == unknown {
			t.Errorf("ErrorText(%d) = %q", code, text)
		}
	}
}

func TestConfigRejected(t *testing.T) {
	base := wxmedia.Config{BaseURL: "http://127.0.0.1:1", AccessToken: testToken}
	for name, mod := range map[string]func(*wxmedia.Config){
		"platform":           func(c *wxmedia.Config) { c.Platform = 9 },
		"chunk not 16x":      func(c *wxmedia.Config) { c.ChunkSize = 1000 },
		"chunk over 20 MiB":  func(c *wxmedia.Config) { c.ChunkSize = 20<<20 + 16 },
		"negative chunk":     func(c *wxmedia.Config) { c.ChunkSize = -16 },
		"negative parallel":  func(c *wxmedia.Config) { c.Parallelism = -1 },
		"negative timeout":   func(c *wxmedia.Config) { c.IOTimeout = -time.Second },
		"NUL in token":       func(c *wxmedia.Config) { c.AccessToken = "a\x00b" },
		"negative limit":     func(c *wxmedia.Config) { c.Limits = map[string]int64{"image": -1} },
		"base URL not a URL": func(c *wxmedia.Config) { c.BaseURL = "not a url" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base
			mod(&cfg)
			c, err := wxmedia.NewClient(cfg)
			if err == nil {
				c.Close()
			}
			wantCode(t, err, wxmedia.CodeInvalidArg)
		})
	}
}

func TestPlatformNames(t *testing.T) {
	for p := wxmedia.PlatformWeCom; p <= wxmedia.PlatformMiniProgram; p++ {
		if got, err := wxmedia.ParsePlatform(p.String()); err != nil || got != p {
			t.Errorf("ParsePlatform(%q) = %v, %v", p.String(), got, err)
		}
	}
	_, err := wxmedia.ParsePlatform("weibo")
	wantCode(t, err, wxmedia.CodeInvalidArg)
}

func TestInvalidArguments(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	ctx := context.Background()
	_, err := c.Download(ctx, "a\x00b", io.Discard)
	wantCode(t, err, wxmedia.CodeInvalidArg)
	_, err = c.Download(ctx, "abc", nil)
	wantCode(t, err, wxmedia.CodeInvalidArg)
	_, err = c.DownloadFile(ctx, "abc", "bad\x00path")
	wantCode(t, err, wxmedia.CodeInvalidArg)
	if err := c.SetAccessToken("x\x00y"); err == nil {
		t.Error("SetAccessToken accepted a NUL byte")
	}
}
