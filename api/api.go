// Package api is the decision API: a payment service posts a payment and gets its decision (approve, review,
// block) while its customer waits. The API produces the payment to the payments topic like any producer, with a
// reply address; the detector scores it and writes its decision; the relay (relay.go) passes the decision to the
// API instance waiting for it. The same payment asked for again, on any instance, gets its first decision.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

//go:embed openapi.yaml
var OpenAPI []byte

// HeaderDeadline is the request header that sets how long the caller waits for the decision, in milliseconds.
const HeaderDeadline = "X-Fraudpipe-Deadline-Ms"

// Producer writes a payment to the payments topic, keyed by account, with the reply address in a header. It
// reports the outcome of the write through done, once.
type Producer func(ctx context.Context, key string, value []byte, replyTo string, done func(error))

// Config is what the API server needs.
type Config struct {
	// Instance is this instance's reply address; NewInstanceID makes one.
	Instance string
	Produce  Producer
	Store    *Store
	Redis    redis.UniversalClient
	Keys     Keys
	// Deadline is how long a request waits for its decision unless it says (HeaderDeadline), at most MaxDeadline.
	Deadline, MaxDeadline time.Duration
	// Fallback is the answer when the deadline passes first; marked as such.
	Fallback topics.Outcome
	// RatePerKey and Burst limit each API key's requests (0: unlimited).
	RatePerKey float64
	Burst      int
	Metrics    *Metrics
	Log        *slog.Logger
}

// ParseFallback reads a fallback outcome: approve, review or block, or decline, a payment service's word for block.
func ParseFallback(s string) (topics.Outcome, error) {
	switch o := topics.Outcome(strings.ToLower(strings.TrimSpace(s))); o {
	case topics.OutcomeApprove, topics.OutcomeReview, topics.OutcomeBlock:
		return o, nil
	case "decline":
		return topics.OutcomeBlock, nil
	}
	return "", fmt.Errorf("api: fallback %q: want approve, review or block (decline)", s)
}

// NewInstanceID returns a fresh reply address.
func NewInstanceID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "api-" + hex.EncodeToString(b)
}

// Server serves the API.
type Server struct {
	cfg     Config
	replies *replies
	limits  *limiters
	base    context.Context // requests' contexts derive from it: they end with the server
}

// New builds the server; Run must run for it to hear its replies.
func New(cfg Config) (*Server, error) {
	switch cfg.Fallback {
	case topics.OutcomeApprove, topics.OutcomeReview, topics.OutcomeBlock:
	default:
		return nil, fmt.Errorf("api: fallback %q: want approve, review or block", cfg.Fallback)
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("api: no API keys (FRAUDPIPE_API_KEYS)")
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 250 * time.Millisecond
	}
	if cfg.MaxDeadline < cfg.Deadline {
		cfg.MaxDeadline = max(10*time.Second, cfg.Deadline)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Server{cfg: cfg, replies: newReplies(), limits: newLimiters(cfg.RatePerKey, cfg.Burst), base: context.Background()}, nil
}

// Run listens for this instance's replies until ctx ends; subscribed is closed once it does.
func (s *Server) Run(ctx context.Context, subscribed chan<- struct{}) error {
	return s.replies.listen(ctx, s.cfg.Redis, s.cfg.Instance, s.cfg.Log, subscribed)
}

// Serve answers HTTP/1.1 on ln until ctx ends, then stops taking requests and gives the open ones up to 5 s.
// Requests still waiting for a decision when ctx ends are answered at once (the fallback, their payment produced).
//
// The server is fasthttp's, not net/http's: on the benchmark's two cores net/http's own work per request (a
// request and header map, a goroutine hand-off to detect a closed connection, a response writer) was a quarter of
// fraudpipe run's CPU at saturation; with fasthttp its CPU per request fell from 72 to 56 µs (docs/performance.md).
// The API needs nothing net/http has and fasthttp lacks (HTTP/2 and TLS belong to the load balancer in front).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.base = ctx
	hs := &fasthttp.Server{
		Handler:               s.route,
		ErrorHandler:          s.badRequest,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		// A payment is small: the body limit is the detector's (413 above it), headers get 8 KiB (431 above).
		MaxRequestBodySize: rules.MaxPaymentBytes,
		ReadBufferSize:     8 << 10,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       s.cfg.MaxDeadline + 5*time.Second,
		IdleTimeout:        2 * time.Minute,
		CloseOnShutdown:    true,
		// A payment is JSON: a multipart body is an invalid payment, not a form to parse first.
		DisablePreParseMultipartForm: true,
	}
	stopped := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.ShutdownWithContext(sctx)
		// A stop before Serve took the listener shuts nothing down: closing it ends Serve all the same.
		ln.Close()
		stopped <- err
	}()
	if err := hs.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("api: %w", err)
	}
	if err := <-stopped; err != nil {
		return fmt.Errorf("api: stop: %w", err)
	}
	return nil
}

const (
	pathPayments = "/v1/payments"
	pathOpenAPI  = "/v1/openapi.yaml"
)

// route dispatches a request by its path and method. A panic in a handler is answered 500 and logged: fasthttp
// does not recover them, and one request must not stop the server.
func (s *Server) route(c *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Log.Error("api: request failed", "panic", p)
			c.Response.Reset()
			writeError(c, http.StatusInternalServerError, "internal", "")
		}
	}()
	raw := c.URI().PathOriginal() // as sent: an id may hold an escaped "/"
	if string(raw) == pathPayments {
		if s.method(c, fasthttp.MethodPost) {
			s.authed(c, s.postPayment)
		}
		return
	}
	if string(raw) == pathOpenAPI {
		if s.method(c, fasthttp.MethodGet) {
			c.SetContentType("application/yaml")
			c.SetBody(OpenAPI)
		}
		return
	}
	// /v1/payments/{id}/decision, the id one path segment.
	if rest, ok := bytes.CutPrefix(raw, []byte(pathPayments+"/")); ok {
		if seg, ok := bytes.CutSuffix(rest, []byte("/decision")); ok && len(seg) > 0 && bytes.IndexByte(seg, '/') < 0 {
			if id, err := url.PathUnescape(string(seg)); err == nil && id != "" {
				if s.method(c, fasthttp.MethodGet) {
					s.authed(c, func(c *fasthttp.RequestCtx, _ string) { s.getDecision(c, id) })
				}
				return
			}
		}
	}
	writeError(c, http.StatusNotFound, "not_found", "")
}

// method checks the request's method (HEAD too where GET is), answering 405 otherwise.
func (s *Server) method(c *fasthttp.RequestCtx, want string) bool {
	if string(c.Method()) == want || want == fasthttp.MethodGet && c.IsHead() {
		return true
	}
	allow := want
	if want == fasthttp.MethodGet {
		allow = "GET, HEAD"
	}
	c.Response.Header.Set("Allow", allow)
	writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", "")
	return false
}

// badRequest answers what fasthttp could not read as a request: too large, or not HTTP.
func (s *Server) badRequest(c *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeJSON(c, http.StatusRequestEntityTooLarge, apiError{Error: "too_large", Detail: fmt.Sprintf("a payment is at most %d bytes", rules.MaxPaymentBytes)})
	case errors.As(err, &small):
		writeError(c, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "")
	case isTimeout(err):
		writeError(c, http.StatusRequestTimeout, "timeout", "")
	default:
		writeError(c, http.StatusBadRequest, "bad_request", "")
	}
}

// Answer is the API's answer: the decision, or the fallback when the deadline came first.
type Answer struct {
	topics.Decision
	// Fallback marks the configured answer given because the decision did not come within the deadline; the real
	// one is then found with GET /v1/payments/{id}/decision, or by posting the payment again.
	Fallback bool `json:"fallback"`
	// ElapsedMs is how long this request took.
	ElapsedMs float64 `json:"elapsed_ms"`
}

func (s *Server) postPayment(c *fasthttp.RequestCtx, _ string) {
	start := time.Now()
	deadline, err := s.deadline(c)
	if err != nil {
		writeError(c, http.StatusBadRequest, "bad_deadline", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(s.base, deadline)
	defer cancel()
	// A copy: fasthttp reuses the request's buffer once the handler returns, and the write outlives it.
	body := bytes.Clone(c.PostBody())
	p, err := rules.ParsePayment(body)
	if err != nil {
		var ip *rules.InvalidPaymentError
		if errors.As(err, &ip) {
			writeJSON(c, http.StatusBadRequest, apiError{Error: "invalid_payment", Reason: ip.Reason, Field: ip.Field, Detail: ip.Detail})
		} else {
			writeError(c, http.StatusBadRequest, "invalid_payment", "")
		}
		s.cfg.Metrics.Requests.WithLabelValues("invalid").Inc()
		return
	}
	key := Key(p.AccountID, p.ID)
	decided, claimed, err := s.cfg.Store.Begin(ctx, key, deadline+2*time.Second)
	if err != nil {
		s.unavailable(c, "store", err)
		return
	}
	var d []byte
	switch {
	case decided != nil:
		d = decided // asked before: the first decision, not scored again
		s.cfg.Metrics.Requests.WithLabelValues("repeated").Inc()
	case claimed:
		d, err = s.decide(ctx, key, p.AccountID, body)
		if err != nil {
			s.unavailable(c, "kafka", err)
			return
		}
	default:
		// Another request for the same payment is being decided (a retry racing its original): wait for its answer.
		d = s.poll(ctx, key)
	}
	if d == nil {
		d, _, _ = s.cfg.Store.Decision(context.WithoutCancel(ctx), key) // a reply lost on the way is still stored
	}
	s.answer(c, start, p, d)
}

// decide produces the payment and waits for its decision; nil when the deadline comes first.
func (s *Server) decide(ctx context.Context, key, account string, payment []byte) ([]byte, error) {
	ch, ok := s.replies.wait(key)
	if !ok {
		return s.poll(ctx, key), nil
	}
	defer s.replies.done(key)
	failed := make(chan error, 1)
	var w struct {
		sync.Mutex
		landed, gaveUp bool
	}
	// Written whatever becomes of the request: a payment answered with the fallback is still decided. The claim
	// follows the write: given back if the write failed (a retry produces the payment); extended once the write
	// landed and the request gave up waiting (a retry, or GET, then waits for its decision through a detector's
	// take-over). A request answered in time needs no extension: its decision is stored before it is relayed.
	s.cfg.Produce(context.WithoutCancel(ctx), account, payment, s.cfg.Instance, func(err error) {
		if err == nil {
			w.Lock()
			w.landed = true
			if w.gaveUp {
				s.cfg.Store.Written(key)
			}
			w.Unlock()
			return
		}
		go func() { // not on the Kafka client's callback goroutine: Redis may be slow
			if rerr := s.cfg.Store.Release(context.Background(), key); rerr != nil {
				s.cfg.Log.Error("api: claim of an unwritten payment not released", "err", rerr)
			}
			failed <- err
		}()
	})
	select {
	case d := <-ch:
		return s.first(ctx, key, d), nil
	case err := <-failed:
		return nil, err
	case <-ctx.Done():
		w.Lock()
		w.gaveUp = true
		if w.landed {
			s.cfg.Store.Written(key)
		}
		w.Unlock()
		return nil, nil
	}
}

// first returns the payment's first decision: a replayed one (the payment was produced again) may carry a late
// re-score, while the API answers what it answered first.
func (s *Server) first(ctx context.Context, key string, d []byte) []byte {
	if bytes.Contains(d, []byte(`"replayed":true`)) {
		if stored, _, err := s.cfg.Store.Decision(ctx, key); err == nil && stored != nil {
			return stored
		}
	}
	return d
}

// poll waits for a decision another request is producing.
func (s *Server) poll(ctx context.Context, key string) []byte {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if d, _, err := s.cfg.Store.Decision(ctx, key); err == nil && d != nil {
			return d
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// answer writes the decision, or the fallback when there is none, and counts it.
func (s *Server) answer(c *fasthttp.RequestCtx, start time.Time, p rules.Payment, decided []byte) {
	outcome := outcomeIn(decided)
	fallback := outcome == ""
	if fallback {
		if decided != nil {
			s.cfg.Log.Error("api: unreadable stored decision", "key", Key(p.AccountID, p.ID))
		}
		decided = topics.AppendDecision(nil, &topics.Decision{PaymentID: p.ID, AccountID: p.AccountID, Decision: s.cfg.Fallback, Rules: []topics.Fired{}})
		outcome = s.cfg.Fallback
		s.cfg.Metrics.Fallbacks.Inc()
	}
	elapsed := time.Since(start)
	s.cfg.Metrics.answer(outcome, fallback, elapsed)
	writeDecision(c, decided, fallback, elapsed)
}

// writeDecision writes a decision as the detector wrote it, with the answer's own fields added (Answer), without
// decoding it again.
func writeDecision(c *fasthttp.RequestCtx, d []byte, fallback bool, elapsed time.Duration) {
	setJSON(c)
	var buf [64]byte
	b := append(buf[:0], `,"fallback":`...)
	b = strconv.AppendBool(b, fallback)
	b = append(b, `,"elapsed_ms":`...)
	b = strconv.AppendFloat(b, float64(elapsed.Microseconds())/1000, 'f', -1, 64)
	b = append(b, "}\n"...)
	c.Response.ResetBody()
	c.Response.AppendBody(d[:len(d)-1])
	c.Response.AppendBody(b)
}

// outcomeIn returns the outcome of an encoded decision, "" if it is not one.
func outcomeIn(d []byte) topics.Outcome {
	if len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' {
		return ""
	}
	_, rest, ok := bytes.Cut(d, []byte(`"decision":"`))
	if !ok {
		return ""
	}
	v, _, ok := bytes.Cut(rest, []byte(`"`))
	switch o := topics.Outcome(v); o {
	case topics.OutcomeApprove, topics.OutcomeReview, topics.OutcomeBlock:
		if ok {
			return o
		}
	}
	return ""
}

func (s *Server) getDecision(c *fasthttp.RequestCtx, id string) {
	start := time.Now()
	account := string(c.QueryArgs().Peek("account_id"))
	if account == "" {
		writeJSON(c, http.StatusBadRequest, apiError{Error: "invalid_request", Field: "account_id", Detail: "required (payment ids are unique per account)"})
		return
	}
	d, pending, err := s.cfg.Store.Decision(s.base, Key(account, id))
	switch {
	case err != nil:
		s.unavailable(c, "store", err)
	case d != nil && outcomeIn(d) == "":
		s.unavailable(c, "store", errors.New("unreadable stored decision"))
	case d != nil:
		writeDecision(c, d, false, time.Since(start))
	case pending:
		writeJSON(c, http.StatusAccepted, apiError{Error: "pending", Detail: "the payment is being decided"})
	default:
		writeError(c, http.StatusNotFound, "not_found", "no decision for this payment through the API")
	}
}

func (s *Server) deadline(c *fasthttp.RequestCtx) (time.Duration, error) {
	h := c.Request.Header.Peek(HeaderDeadline)
	if len(h) == 0 {
		return s.cfg.Deadline, nil
	}
	ms, err := strconv.Atoi(string(h))
	if err != nil || ms < 1 {
		return 0, fmt.Errorf("%s: want a positive number of milliseconds", HeaderDeadline)
	}
	return min(time.Duration(ms)*time.Millisecond, s.cfg.MaxDeadline), nil
}

// unavailable answers 503 without the cause, which goes to the log.
func (s *Server) unavailable(c *fasthttp.RequestCtx, part string, err error) {
	s.cfg.Log.Error("api: request failed", "part", part, "err", err)
	s.cfg.Metrics.Requests.WithLabelValues("unavailable").Inc()
	c.Response.Header.Set("Retry-After", "1")
	writeError(c, http.StatusServiceUnavailable, "unavailable", "try again; posting the same payment again is safe")
}

type apiError struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func writeError(c *fasthttp.RequestCtx, code int, kind, detail string) {
	writeJSON(c, code, apiError{Error: kind, Detail: detail})
}

func writeJSON(c *fasthttp.RequestCtx, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	setJSON(c)
	c.SetStatusCode(code)
	c.SetBody(append(b, '\n'))
}

func setJSON(c *fasthttp.RequestCtx) {
	c.SetContentType("application/json")
	c.Response.Header.Set("Cache-Control", "no-store")
}

// isTimeout reports a connection's read or write deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
