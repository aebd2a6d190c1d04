package notifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedExampleConfigLoads(t *testing.T) {
	for _, path := range []string{"../examples/notifier.yaml", "../deploy/notifier.yaml"} {
		cfg, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Email == nil || cfg.Email.Port != 1025 || len(cfg.Routes["block"]) != 1 {
			t.Fatalf("%s: config %+v", path, cfg)
		}
	}
}

// A route to a channel the file configures no provider for is an error, named, with every other problem; without
// routes in the file, the default routes keep only the configured channels.
func TestRoutesToUnconfiguredChannelsAreRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, err := LoadConfig(write("bad.yaml", "routes:\n  review: [email]\n  block: [email, sms, push]\nemail: { host: h, from: f, tls: none }\nrate_limits: { fax: { limit: 1, per: 1h } }\n"))
	for _, want := range []string{"routes.block: channel sms has no sms: section", "routes.block: channel push has no push: section", `rate_limits: unknown channel "fax"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	cfg, err := LoadConfig(write("defaults.yaml", "email: { host: h, from: f, tls: none }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Routes["block"]; len(got) != 1 || got[0] != ChannelEmail {
		t.Fatalf("default block route %v, want only the configured email", got)
	}
}
