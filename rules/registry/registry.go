// Package registry keeps the versions of the ruleset on the compacted rules topic, and publishes new ones.
//
// A version is the whole rules bundle (the rules file and its list files), numbered 1, 2, 3… and never
// rewritten except to record where it took effect. Publishing version N writes it to the rules topic, then one
// switch marker into every partition of the payments topic, then the version again with the marker offsets.
// A detector switches a partition to version N when it reaches that marker: every payment appended to a
// partition before the marker is scored by the older version, every payment after it by N, on every detector
// instance and in every replay. That is the well-defined switch point; the offsets make it recoverable after a
// restart that resumes past the marker.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Version is one published ruleset, as stored on the rules topic.
type Version struct {
	Version        int          `json:"version"`
	Digest         string       `json:"digest"`
	CreatedAt      time.Time    `json:"created_at"`
	Author         string       `json:"author,omitempty"`
	Comment        string       `json:"comment,omitempty"`
	RolledBackFrom int          `json:"rolled_back_from,omitempty"`
	Bundle         rules.Bundle `json:"bundle"`
	// Effective maps each payments partition to the offset of this version's switch marker; empty until the
	// markers are written.
	Effective map[int32]int64 `json:"effective,omitempty"`
}

// Key is the rules-topic key of version n; zero-padded so the topic's keys sort by version.
func Key(n int) string { return fmt.Sprintf("v%08d", n) }

// Marker is the value of a switch marker on the payments topic.
type Marker struct {
	RulesetVersion int `json:"ruleset_version"`
}

type entry struct {
	v  Version
	rs *rules.Ruleset
}

// Registry is the set of versions read from the rules topic, kept current by following it.
type Registry struct {
	log *slog.Logger
	fol *kafka.Follower

	mu       sync.Mutex
	versions map[int]*entry
	changed  chan struct{} // closed and replaced on every new or updated version
}

// New returns a registry that follows the rules topic of the cluster; Run starts it.
func New(cfg kafka.Config, log *slog.Logger) *Registry {
	r := &Registry{log: log, versions: map[int]*entry{}, changed: make(chan struct{})}
	r.fol = cfg.Follow(topics.Rules, func(m *kgo.Record) { r.apply(m.Key, m.Value) }, log)
	return r
}

// Run follows the rules topic until ctx is done.
func (r *Registry) Run(ctx context.Context) error { return r.fol.Run(ctx) }

// WaitReady blocks until the registry holds every version that existed when it started.
func (r *Registry) WaitReady(ctx context.Context) error { return r.fol.WaitReady(ctx) }

func (r *Registry) apply(key, value []byte) {
	if value == nil {
		return // versions are never deleted by fraudpipe; a tombstone written by hand changes nothing here
	}
	var v Version
	if err := json.Unmarshal(value, &v); err != nil || Key(v.Version) != string(key) {
		r.log.Error("ignoring an unreadable record on the rules topic", "key", string(key), "err", err)
		return
	}
	rs, err := rules.ParseBundle(v.Bundle)
	if err != nil {
		// Push validates before it publishes, so this is a record written by other means.
		r.log.Error("ignoring an invalid ruleset on the rules topic", "version", v.Version, "err", err)
		return
	}
	rs.Number = v.Version
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.versions[v.Version]; ok && old.v.Digest == v.Digest {
		rs = old.rs // the same version again with its offsets: keep the compiled ruleset
	}
	r.versions[v.Version] = &entry{v: v, rs: rs}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Get returns version n, if the registry has it.
func (r *Registry) Get(n int) (Version, *rules.Ruleset, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.versions[n]
	if !ok {
		return Version{}, nil, false
	}
	return e.v, e.rs, true
}

// Wait returns version n, waiting for it to arrive: a switch marker can be read before the version it names.
func (r *Registry) Wait(ctx context.Context, n int) (*rules.Ruleset, error) {
	for {
		r.mu.Lock()
		e, ok := r.versions[n]
		changed := r.changed
		r.mu.Unlock()
		if ok {
			return e.rs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for ruleset version %d: %w", n, ctx.Err())
		}
	}
}

// Latest returns the newest version; ok is false while there is none.
func (r *Registry) Latest() (Version, *rules.Ruleset, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.versions) == 0 {
		return Version{}, nil, false
	}
	e := r.versions[slices.Max(slices.Collect(maps.Keys(r.versions)))]
	return e.v, e.rs, true
}

// LatestRuleset is Latest's ruleset, nil while there is none.
func (r *Registry) LatestRuleset() *rules.Ruleset {
	_, rs, _ := r.Latest()
	return rs
}

// List returns every version, oldest first.
func (r *Registry) List() []Version {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Version, 0, len(r.versions))
	for _, n := range slices.Sorted(maps.Keys(r.versions)) {
		out = append(out, r.versions[n].v)
	}
	return out
}

// At returns the ruleset in force at offset of a payments partition: the newest version whose switch marker
// in that partition is at or before offset. Before the first marker, the oldest version applies (payments
// that were waiting when the first ruleset was published).
func (r *Registry) At(partition int32, offset int64) *rules.Ruleset {
	r.mu.Lock()
	defer r.mu.Unlock()
	var best, oldest *entry
	for _, e := range r.versions {
		if oldest == nil || e.v.Version < oldest.v.Version {
			oldest = e
		}
		if m, ok := e.v.Effective[partition]; ok && m <= offset && (best == nil || e.v.Version > best.v.Version) {
			best = e
		}
	}
	if best == nil {
		best = oldest
	}
	if best == nil {
		return nil
	}
	return best.rs
}

// Meta describes a push.
type Meta struct {
	Author  string
	Comment string
	// RolledBackFrom is set by Rollback.
	RolledBackFrom int
}

// Push publishes bundle as the next version, unless it is the latest version's content already (then it
// returns that version and false). The bundle is validated first: an invalid one is refused and nothing is
// written. The registry must be ready (WaitReady).
func (r *Registry) Push(ctx context.Context, cfg kafka.Config, b rules.Bundle, meta Meta) (Version, bool, error) {
	if _, err := rules.ParseBundle(b); err != nil {
		return Version{}, false, fmt.Errorf("refused, nothing published: %w", err)
	}
	latest, _, ok := r.Latest()
	if ok && latest.Digest == b.Digest() && meta.RolledBackFrom == 0 {
		return latest, false, nil
	}
	v := Version{Version: latest.Version + 1, Digest: b.Digest(), CreatedAt: time.Now().UTC(),
		Author: meta.Author, Comment: meta.Comment, RolledBackFrom: meta.RolledBackFrom, Bundle: b}

	// Every record names its partition: the rules topic has one, and a marker goes to each payments partition.
	prod, err := cfg.NewProducer("fraudpipe-rules-push", r.log, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return Version{}, false, err
	}
	defer prod.Close()
	put := func() error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return prod.ProduceSync(ctx, &kgo.Record{Topic: topics.Rules, Key: []byte(Key(v.Version)), Value: data}).FirstErr()
	}
	// The version first, so a detector that reads a marker finds what it names.
	if err := put(); err != nil {
		return Version{}, false, fmt.Errorf("publish version %d: %w", v.Version, err)
	}
	parts, err := cfg.PartitionCount(ctx, string(topics.Payments))
	if err != nil {
		return Version{}, false, err
	}
	marker, _ := json.Marshal(Marker{RulesetVersion: v.Version})
	v.Effective = map[int32]int64{}
	for p := range parts {
		m, err := prod.ProduceSync(ctx, &kgo.Record{
			Topic: string(topics.Payments), Partition: p, Value: marker,
			Headers: []kgo.RecordHeader{{Key: topics.HeaderControl, Value: []byte(topics.ControlRuleset)}},
		}).First()
		if err != nil {
			return Version{}, false, fmt.Errorf("write the switch marker of version %d to payments/%d: %w (detectors switch partitions as they reach the markers written so far; push again to finish)", v.Version, p, err)
		}
		v.Effective[p] = m.Offset
	}
	if err := put(); err != nil {
		return Version{}, false, fmt.Errorf("record where version %d took effect: %w", v.Version, err)
	}
	// Wait for our own record, so that a command following this one (list, show) sees it.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		r.mu.Lock()
		e, ok := r.versions[v.Version]
		changed := r.changed
		r.mu.Unlock()
		if ok && len(e.v.Effective) == len(v.Effective) {
			if e.v.Digest != v.Digest {
				return Version{}, false, fmt.Errorf("version %d was published concurrently by someone else; check `fraudpipe rules list`", v.Version)
			}
			return v, true, nil
		}
		select {
		case <-changed:
		case <-wctx.Done():
			return v, true, nil // published; this follower is merely slow to see it
		}
	}
}

// Rollback publishes the content of version n again, as the next version.
func (r *Registry) Rollback(ctx context.Context, cfg kafka.Config, n int, meta Meta) (Version, error) {
	old, _, ok := r.Get(n)
	if !ok {
		return Version{}, fmt.Errorf("no ruleset version %d", n)
	}
	meta.RolledBackFrom = n
	if meta.Comment == "" {
		meta.Comment = "rollback to version " + strconv.Itoa(n)
	}
	v, _, err := r.Push(ctx, cfg, old.Bundle, meta)
	return v, err
}
