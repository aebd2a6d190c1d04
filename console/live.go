package console

import (
	"sync"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Hub fans alerts out to the live feeds of every open console page, and keeps the newest for a page that opens.
// A slow page misses alerts rather than holding up the others: its feed is dropped, and the page reloads to show
// the newest again.
type Hub struct {
	mu     sync.Mutex
	recent []topics.Alert // oldest first
	keep   int
	subs   map[chan topics.Alert]struct{}
}

// NewHub keeps the newest keep alerts for pages that open.
func NewHub(keep int) *Hub {
	return &Hub{keep: keep, subs: map[chan topics.Alert]struct{}{}}
}

// Publish hands a to every live feed.
func (h *Hub) Publish(a topics.Alert) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recent = append(h.recent, a)
	if len(h.recent) > h.keep {
		h.recent = append(h.recent[:0], h.recent[len(h.recent)-h.keep:]...)
	}
	for ch := range h.subs {
		select {
		case ch <- a:
		default: // this feed is behind: close it; the page reloads, which shows the newest again
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Recent returns the newest alerts, newest first.
func (h *Hub) Recent() []topics.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]topics.Alert, len(h.recent))
	for i, a := range h.recent {
		out[len(out)-1-i] = a
	}
	return out
}

// subscribe returns a feed of the alerts published from now on, and its cancel.
func (h *Hub) subscribe() (<-chan topics.Alert, func()) {
	ch := make(chan topics.Alert, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}
