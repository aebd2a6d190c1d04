package registry

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Lists holds the entries of the lists topic (key LIST/VALUE; a tombstone removes it), for list and allow
// rules: they add to the rules file's own list files and change without a new ruleset version.
type Lists struct {
	fol *kafka.Follower

	mu      sync.RWMutex
	entries map[string]map[string]struct{}
}

// NewLists returns the lists of the cluster's lists topic; Run starts following it.
func NewLists(cfg kafka.Config, log *slog.Logger) *Lists {
	l := &Lists{entries: map[string]map[string]struct{}{}}
	l.fol = cfg.Follow(topics.Lists, func(m *kgo.Record) { l.apply(string(m.Key), m.Value) }, log)
	return l
}

// Run follows the lists topic until ctx is done.
func (l *Lists) Run(ctx context.Context) error { return l.fol.Run(ctx) }

// WaitReady blocks until every entry that existed at start is loaded.
func (l *Lists) WaitReady(ctx context.Context) error { return l.fol.WaitReady(ctx) }

func (l *Lists) apply(key string, value []byte) {
	list, v, ok := strings.Cut(key, "/")
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if value == nil {
		delete(l.entries[list], v)
		return
	}
	if l.entries[list] == nil {
		l.entries[list] = map[string]struct{}{}
	}
	l.entries[list][v] = struct{}{}
}

// Contains implements rules.ListSource.
func (l *Lists) Contains(list, value string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.entries[list][value]
	return ok
}

// Entries returns a list's values on the lists topic, sorted.
func (l *Lists) Entries(list string) []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Sorted(maps.Keys(l.entries[list]))
}

// UpdateLists adds (or, with remove, deletes) values of a list on the lists topic.
func UpdateLists(ctx context.Context, cfg kafka.Config, list string, values []string, remove bool) error {
	if list == "" || strings.Contains(list, "/") {
		return fmt.Errorf("list name %q: must be non-empty without '/'", list)
	}
	prod, err := cfg.NewProducer("fraudpipe-lists", slog.Default())
	if err != nil {
		return err
	}
	defer prod.Close()
	recs := make([]*kgo.Record, 0, len(values))
	for _, v := range values {
		r := &kgo.Record{Topic: topics.Lists, Key: []byte(topics.ListKey(list, v))}
		if !remove {
			r.Value = []byte("1")
		}
		recs = append(recs, r)
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("update list %s: %w", list, err)
	}
	return nil
}
