package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `fraudpipe run` checks its rules file and notifier config before it starts anything, and reports every problem
// at once: nothing listens, nothing is written, and the exit is quick.
func TestRunRefusesBrokenConfigurationBeforeStartingAnything(t *testing.T) {
	dir := t.TempDir()
	rulesPath := copyRules(t, dir)
	data, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rulesPath, []byte(strings.Replace(string(data), "window: 5m", "window: 5x", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	notifierPath := filepath.Join(dir, "notifier.yaml")
	if err := os.WriteFile(notifierPath, []byte("routes:\n  block: [email, sms]\nemail: { host: h, from: f, tls: none }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	began := time.Now()
	_, errOut, err := fraudpipeCLI(t, "run", "--rules", rulesPath, "--notifier-config", notifierPath,
		"--data-dir", filepath.Join(dir, "data"), "--broker-listen", listen, "--metrics-addr", "127.0.0.1:0")
	if err == nil {
		t.Fatal("fraudpipe run started with a broken rules file and notifier config")
	}
	for _, want := range []string{"nothing started", `rule "rapid-fire": field "window"`, "routes.block: channel sms has no sms: section"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("refusing took %s", took)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("the data dir was created: %v", err)
	}
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on the broker address %s", listen)
	}
}
