package api

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"
)

// Keys are the API keys callers authenticate with, by the SHA-256 of the key: the lookup time tells nothing
// about how much of a guessed key was right, and no key is kept in clear.
type Keys map[[32]byte]string

// MinKeyLen is the shortest key accepted: 128 bits of hex.
const MinKeyLen = 32

// ParseKeys reads "name:key,name:key" (FRAUDPIPE_API_KEYS). Names label metrics and logs; keys are secrets.
func ParseKeys(s string) (Keys, error) {
	keys := Keys{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, key, ok := strings.Cut(entry, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("API keys: an entry is not name:key")
		}
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("API keys: the key of %q is shorter than %d characters", name, MinKeyLen)
		}
		keys[sha256.Sum256([]byte(key))] = name
	}
	return keys, nil
}

// caller returns the name of the key a request presents (Authorization: Bearer KEY, or X-API-Key: KEY).
func (k Keys) caller(c *fasthttp.RequestCtx) (string, bool) {
	key := c.Request.Header.Peek("X-API-Key")
	if auth := c.Request.Header.Peek("Authorization"); len(key) == 0 && len(auth) > 7 && bytes.EqualFold(auth[:7], []byte("bearer ")) {
		key = auth[7:]
	}
	if len(key) == 0 {
		return "", false
	}
	name, ok := k[sha256.Sum256(key)]
	return name, ok
}

// limiters hold a token bucket per key.
type limiters struct {
	perSecond float64
	burst     int
	mu        sync.Mutex
	byKey     map[string]*rate.Limiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{perSecond: perSecond, burst: max(burst, 1), byKey: map[string]*rate.Limiter{}}
}

func (l *limiters) allow(name string) bool {
	if l.perSecond <= 0 {
		return true
	}
	l.mu.Lock()
	lim := l.byKey[name]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
		l.byKey[name] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}

// authed admits requests with a known key within its rate.
func (s *Server) authed(c *fasthttp.RequestCtx, h func(*fasthttp.RequestCtx, string)) {
	name, ok := s.cfg.Keys.caller(c)
	if !ok {
		s.cfg.Metrics.Requests.WithLabelValues("unauthenticated").Inc()
		c.Response.Header.Set("WWW-Authenticate", `Bearer realm="fraudpipe"`)
		writeError(c, http.StatusUnauthorized, "unauthenticated", "an API key is required (Authorization: Bearer KEY)")
		return
	}
	if !s.limits.allow(name) {
		s.cfg.Metrics.Requests.WithLabelValues("rate_limited").Inc()
		c.Response.Header.Set("Retry-After", "1")
		writeError(c, http.StatusTooManyRequests, "rate_limited", "")
		return
	}
	h(c, name)
}
