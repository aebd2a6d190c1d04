// Package watch keeps a rules file loaded: it reloads the file when it changes and swaps the ruleset in force
// only when the new file is valid. It is the one place outside the pure rules package that touches the file.
package watch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/rules"
)

// Watcher holds the ruleset in force.
type Watcher struct {
	path    string
	log     *slog.Logger
	current atomic.Pointer[rules.Ruleset]
	lastRaw []byte // the bytes last attempted, valid or not: an unchanged invalid file is reported once
	reloads *prometheus.CounterVec
	info    *prometheus.GaugeVec
}

// Load reads the file; an invalid file at start-up is an error, since there are no last good rules yet.
func Load(path string, log *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	rs, err := rules.Parse(path, data)
	if err != nil {
		return nil, err
	}
	w := &Watcher{path: path, log: log, lastRaw: data,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_rules_reloads_total", Help: "Reloads of the rules file, by result (ok, invalid).",
		}, []string{"result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraudpipe_ruleset_info", Help: "The ruleset in force (value 1), by version and file.",
		}, []string{"version", "file"}),
	}
	if reg != nil {
		reg.MustRegister(w.reloads, w.info)
	}
	w.swap(rs)
	log.Info("rules loaded", "file", path, "version", rs.Digest, "rules", len(rs.Rules))
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
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.log.Error("rules file unreadable; keeping the rules in force", "file", w.path, "err", err,
			"version", w.Current().Digest)
		return
	}
	if bytes.Equal(data, w.lastRaw) {
		return
	}
	w.lastRaw = data
	rs, err := rules.Parse(w.path, data)
	if err != nil {
		w.reloads.WithLabelValues("invalid").Inc()
		w.log.Error("rules file rejected; keeping the rules in force", "err", err, "version", w.Current().Digest)
		return
	}
	old := w.Current()
	w.swap(rs)
	w.reloads.WithLabelValues("ok").Inc()
	added, removed, changed := Diff(old, rs)
	w.log.Info("rules reloaded", "file", w.path, "version", rs.Digest, "previous", old.Digest,
		"added", added, "removed", removed, "changed", changed)
	if rs.Retention > old.Retention {
		w.log.Warn("state retention grew: windows reaching further back than the old retention are accurate only from now on",
			"old", rules.FormatDuration(old.Retention), "new", rules.FormatDuration(rs.Retention))
	}
}

// Diff names the rules added, removed and changed between two rulesets.
func Diff(old, cur *rules.Ruleset) (added, removed, changed []string) {
	index := func(rs *rules.Ruleset) map[string]rules.Rule {
		m := map[string]rules.Rule{}
		for _, r := range rs.Rules {
			r.Line = 0 // moving a rule in the file does not change it
			m[r.Name] = r
		}
		return m
	}
	o, c := index(old), index(cur)
	for name, r := range c {
		if prev, ok := o[name]; !ok {
			added = append(added, name)
		} else if prev != r {
			changed = append(changed, name)
		}
	}
	for name := range o {
		if _, ok := c[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed
}
