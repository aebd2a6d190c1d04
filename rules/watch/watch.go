// Package watch keeps a rules file loaded: it reloads the file when it changes and swaps the ruleset in force
// only when the new file is valid. It is the one place outside the pure rules package that touches the file.
package watch

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/rules"
)

// Watcher holds the ruleset in force.
type Watcher struct {
	path     string
	log      *slog.Logger
	current  atomic.Pointer[rules.Ruleset]
	last     string // digest (or error) of the content last attempted: an unchanged invalid file is reported once
	rejected bool   // the file was last seen invalid: its next valid content is reported even if it changes nothing
	// OnChange, when set, is called with each new valid ruleset before it is put in force; an error keeps the
	// old one (fraudpipe run publishes the file as a new version here). Set it before Run.
	OnChange func(*rules.Ruleset) error
	reloads  *prometheus.CounterVec
	info     *prometheus.GaugeVec
}

// Load reads the file; an invalid file at start-up is an error, since there are no last good rules yet.
func Load(path string, log *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	rs, err := rules.LoadFile(path)
	if err != nil {
		return nil, err
	}
	w := &Watcher{path: path, log: log, last: rs.Digest,
		reloads: metrics.CounterVec("fraudpipe_rules_reloads_total", "Reloads of the rules file, by result (ok, invalid, unpublished).", "result"),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraudpipe_ruleset_info", Help: "The rules file's last good content (value 1), by digest and file.",
		}, []string{"version", "file"}),
	}
	if reg != nil {
		reg.MustRegister(w.reloads, w.info)
	}
	w.swap(rs)
	log.Info("rules loaded", "file", path, "digest", rs.Digest, "rules", len(rs.Rules))
	return w, nil
}

// Current returns the ruleset in force.
func (w *Watcher) Current() *rules.Ruleset { return w.current.Load() }

func (w *Watcher) swap(rs *rules.Ruleset) {
	if old := w.current.Swap(rs); old != nil {
		w.info.DeleteLabelValues(old.Digest, old.Source)
	}
	w.info.WithLabelValues(rs.Digest, rs.Source).Set(1)
}

// Run watches the file until ctx is done. File events are debounced (editors write in several steps); a
// periodic re-read covers filesystems where events do not arrive.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch rules: %w", err)
	}
	defer fw.Close()
	// Watch the directory, not the file: editors save by writing a new file and renaming it over the old one,
	// which ends a watch on the file itself.
	if err := fw.Add(filepath.Dir(w.path)); err != nil {
		return fmt.Errorf("watch rules dir: %w", err)
	}
	// A save between Load and the watch taking hold sends no event: look once now.
	w.reload()
	name := filepath.Clean(w.path)
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	poll := time.NewTicker(5 * time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-fw.Events:
			if filepath.Clean(ev.Name) == name {
				debounce.Reset(100 * time.Millisecond)
			}
		case err := <-fw.Errors:
			w.log.Warn("rules watch error", "err", err)
		case <-debounce.C:
			w.reload()
		case <-poll.C:
			w.reload()
		}
	}
}

func (w *Watcher) reload() {
	rs, err := rules.LoadFile(w.path)
	if err != nil {
		if err.Error() == w.last {
			return
		}
		w.last = err.Error()
		w.rejected = true
		w.reloads.WithLabelValues("invalid").Inc()
		w.log.Error("rules file rejected; keeping the rules in force", "err", err, "digest", w.Current().Digest)
		return
	}
	if rs.Digest == w.last || rs.Digest == w.Current().Digest {
		if w.rejected {
			// Otherwise the rejection stays the log's last word on the file although it is fixed.
			w.log.Info("rules file valid again; the rules in force are unchanged", "file", w.path, "digest", rs.Digest)
			w.rejected = false
		}
		w.last = rs.Digest
		return
	}
	if w.OnChange != nil {
		if err := w.OnChange(rs); err != nil {
			// Not recorded as attempted: the next poll tries again.
			w.reloads.WithLabelValues("unpublished").Inc()
			w.log.Error("rules file valid but not published; keeping the rules in force", "err", err)
			return
		}
	}
	w.last, w.rejected = rs.Digest, false
	old := w.Current()
	w.swap(rs)
	w.reloads.WithLabelValues("ok").Inc()
	ch := rules.Diff(old, rs)
	w.log.Info("rules reloaded", "file", w.path, "digest", rs.Digest, "previous", old.Digest,
		"added", ch.Added, "removed", ch.Removed, "changed", ch.Changed)
	if rs.Retention > old.Retention {
		w.log.Warn("state retention grew: windows reaching further back than the old retention are accurate only from now on",
			"old", rules.FormatDuration(old.Retention), "new", rules.FormatDuration(rs.Retention))
	}
}
