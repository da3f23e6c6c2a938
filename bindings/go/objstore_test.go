package wxmedia_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

// An ObjectStore may be printed and logged: every way shows the access key
// and never the secret or session token. (DownloadToObject itself is tested
// against a real S3 server in internal/s3test.)
func TestObjectStoreRedactsSecrets(t *testing.T) {
	const secret, token = "s3-Secret-9Jq2Lm", "s3-Token-Zz81Pp"
	s := wxmedia.ObjectStore{Endpoint: "http://127.0.0.1:9000", AccessKey: "AKIDGO", SecretKey: secret, SessionToken: token, PartSize: 5 << 20}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("store", "store", s)
	for _, out := range []string{
		s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintf("%v|%+v|%#v|%s", s, s, s, s),
		fmt.Sprintf("%v", &s), fmt.Sprintf("%+v", []wxmedia.ObjectStore{s}), logged.String(),
	} {
		if strings.Contains(out, secret) || strings.Contains(out, token) {
			t.Errorf("secret shown: %s", out)
		}
		if !strings.Contains(out, "AKIDGO") || !strings.Contains(out, "REDACTED") {
			t.Errorf("want the access key and a redaction mark: %s", out)
		}
	}
	// Nothing to redact: no mark.
	if out := (wxmedia.ObjectStore{Region: "r"}).String(); strings.Contains(out, "REDACTED") {
		t.Errorf("String() = %s", out)
	}
}
