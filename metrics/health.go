package metrics

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Status is one part's health. Live: the part works or will recover by itself; a part that is not live (stopped
// for good, or failing in a loop) needs a person or a restart of the process. Ready: the part does its work now
// (connected, caught up with its tables, not restarting). Detail says why, for a person.
type Status struct {
	Live, Ready bool
	Detail      string
}

// Health answers /healthz (liveness) and /readyz (readiness) from the parts of a process. Each part adds a check
// that reports its real state when asked.
type Health struct {
	mu     sync.Mutex
	checks map[string]func() Status
}

// NewHealth returns a Health without parts: live and ready.
func NewHealth() *Health { return &Health{checks: map[string]func() Status{}} }

// Add registers (or replaces) the check of a part.
func (h *Health) Add(part string, check func() Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[part] = check
}

// Remove drops a part's check.
func (h *Health) Remove(part string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.checks, part)
}

// Report returns whether every part is live (ready, with ready set) and a plain-text body: "ok" or "not live" /
// "not ready" on the first line, then one line per part, "part: state: detail", sorted by part.
func (h *Health) Report(ready bool) (bool, string) {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	checks := make([]func() Status, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		checks = append(checks, h.checks[n])
	}
	h.mu.Unlock()
	ok := true
	var b strings.Builder
	for i, n := range names {
		st := checks[i]()
		good, word := st.Live, "live"
		if ready {
			good, word = st.Ready, "ready"
		}
		if !good {
			ok, word = false, "not "+word
		}
		fmt.Fprintf(&b, "%s: %s: %s\n", n, word, st.Detail)
	}
	head := "ok\n"
	switch {
	case !ok && ready:
		head = "not ready\n"
	case !ok:
		head = "not live\n"
	}
	return ok, head + b.String()
}

// handler serves one of the reports: 200 when ok, 503 otherwise, the report as the body.
func (h *Health) handler(ready bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		ok := true
		body := "ok\n"
		if h != nil {
			ok, body = h.Report(ready)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte(body))
	}
}
