package watch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
)

const good = `
thresholds: { review: 50, block: 80 }
rules:
  - { name: rapid, type: count, window: 5m, limit: 4, score: 50 }
`

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, what, cond)
}

// watching writes the good rules file and runs a watcher on it until the test ends; logs is the watcher's log.
func watching(t *testing.T) (path string, w *Watcher, logs *testenv.Buffer) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	logs = new(testenv.Buffer)
	w, err := Load(path, slog.New(slog.NewTextHandler(logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return path, w, logs
}

func TestReloadSwapsValidFilesAndKeepsRulesOnInvalidOnes(t *testing.T) {
	path, w, logs := watching(t)
	first := w.Current()

	// An invalid save: rejected with file, line, rule and field; the rules in force stay.
	bad := strings.Replace(good, "window: 5m", "window: 5x", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	// The watcher may catch the file half-written and reject that too; the rejection of the saved file must name
	// file, line, rule and field.
	waitFor(t, "the rejection, located", func() bool {
		return strings.Contains(logs.String(), `rules.yaml:4: rule \"rapid\": field \"window\"`)
	})
	if w.Current() != first {
		t.Fatal("an invalid file replaced the rules in force")
	}

	// A valid save through rename, as editors do it.
	tmp := filepath.Join(filepath.Dir(path), ".rules.yaml.swp")
	if err := os.WriteFile(tmp, []byte(strings.Replace(good, "limit: 4", "limit: 9", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new rules", func() bool { return w.Current().Rules[0].Limit == 9 })
	if w.Current().Digest == first.Digest {
		t.Fatal("a new file must get a new version")
	}
	// The swap comes before the log line (the rules take force first), so the line is awaited, not assumed.
	waitFor(t, "a reload log naming the changed rule and setting", func() bool {
		return strings.Contains(logs.String(), `changed="[rapid: limit 4 → 9]"`)
	})
}

func TestInvalidFileAtStartIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(path, []byte("rules: 5\n"), 0o644)
	_, err := Load(path, slog.Default(), nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("want an error naming %s, got %v", path, err)
	}
}

// Fixing a rejected save back to the rules in force changes nothing, but the log must say the file is valid
// again: otherwise its last word on the file is the rejection.
func TestValidSaveAfterARejectedOneIsLogged(t *testing.T) {
	path, _, logs := watching(t)
	if err := os.WriteFile(path, []byte(strings.Replace(good, "window: 5m", "window: 5x", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejection", func() bool { return strings.Contains(logs.String(), "rules file rejected") })
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file reported valid again", func() bool {
		return strings.Contains(logs.String(), "rules file valid again")
	})
	if strings.LastIndex(logs.String(), "rules file valid again") < strings.LastIndex(logs.String(), "rules file rejected") {
		t.Fatalf("the rejection is still the last word:\n%s", logs.String())
	}
}
