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
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

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
	handler http.Handler
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
	s := &Server{cfg: cfg, replies: newReplies(), limits: newLimiters(cfg.RatePerKey, cfg.Burst)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/payments", s.authed(s.postPayment))
	mux.HandleFunc("GET /v1/payments/{id}/decision", s.authed(s.getDecision))
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeError(w, http.StatusNotFound, "not_found", "") })
	s.handler = mux
	return s, nil
}

// Run listens for this instance's replies until ctx ends; subscribed is closed once it does.
func (s *Server) Run(ctx context.Context, subscribed chan<- struct{}) error {
	return s.replies.listen(ctx, s.cfg.Redis, s.cfg.Instance, s.cfg.Log, subscribed)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Answer is the API's answer: the decision, or the fallback when the deadline came first.
type Answer struct {
	topics.Decision
	// Fallback marks the configured answer given because the decision did not come within the deadline; the real
	// one is then found with GET /v1/payments/{id}/decision, or by posting the payment again.
	Fallback bool `json:"fallback"`
	// ElapsedMs is how long this request took.
	ElapsedMs float64 `json:"elapsed_ms"`
}

func (s *Server) postPayment(w http.ResponseWriter, r *http.Request, _ string) {
	start := time.Now()
	deadline, err := s.deadline(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_deadline", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), deadline)
	defer cancel()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rules.MaxPaymentBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: "too_large", Detail: fmt.Sprintf("a payment is at most %d bytes", rules.MaxPaymentBytes)})
			return
		}
		writeError(w, http.StatusBadRequest, "unreadable_body", "")
		return
	}
	p, err := rules.ParsePayment(body)
	if err != nil {
		var ip *rules.InvalidPaymentError
		if errors.As(err, &ip) {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid_payment", Reason: ip.Reason, Field: ip.Field, Detail: ip.Detail})
		} else {
			writeError(w, http.StatusBadRequest, "invalid_payment", "")
		}
		s.cfg.Metrics.Requests.WithLabelValues("invalid").Inc()
		return
	}
	key := Key(p.AccountID, p.ID)
	decided, claimed, err := s.cfg.Store.Begin(ctx, key, deadline+2*time.Second)
	if err != nil {
		s.unavailable(w, "store", err)
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
			s.unavailable(w, "kafka", err)
			return
		}
	default:
		// Another request for the same payment is being decided (a retry racing its original): wait for its answer.
		d = s.poll(ctx, key)
	}
	if d == nil {
		d, _, _ = s.cfg.Store.Decision(context.WithoutCancel(ctx), key) // a reply lost on the way is still stored
	}
	s.answer(w, start, p, d)
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

// answer writes the decision as the detector wrote it, with the answer's own fields added (no second encoding),
// or the fallback when there is none.
func (s *Server) answer(w http.ResponseWriter, start time.Time, p rules.Payment, decided []byte) {
	outcome := outcomeIn(decided)
	fallback := outcome == ""
	if fallback {
		if decided != nil {
			s.cfg.Log.Error("api: unreadable stored decision", "key", Key(p.AccountID, p.ID))
		}
		b, _ := json.Marshal(topics.Decision{PaymentID: p.ID, AccountID: p.AccountID, Decision: s.cfg.Fallback, Rules: []topics.Fired{}})
		decided, outcome = b, s.cfg.Fallback
		s.cfg.Metrics.Fallbacks.Inc()
	}
	elapsed := time.Since(start)
	s.cfg.Metrics.answer(outcome, fallback, elapsed)
	b := make([]byte, 0, len(decided)+48)
	b = append(b, decided[:len(decided)-1]...)
	b = append(b, `,"fallback":`...)
	b = strconv.AppendBool(b, fallback)
	b = append(b, `,"elapsed_ms":`...)
	b = strconv.AppendFloat(b, float64(elapsed.Microseconds())/1000, 'f', -1, 64)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
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

func (s *Server) getDecision(w http.ResponseWriter, r *http.Request, _ string) {
	id, account := r.PathValue("id"), r.URL.Query().Get("account_id")
	if account == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid_request", Field: "account_id", Detail: "required (payment ids are unique per account)"})
		return
	}
	d, pending, err := s.cfg.Store.Decision(r.Context(), Key(account, id))
	switch {
	case err != nil:
		s.unavailable(w, "store", err)
	case d != nil:
		dec, err := decode(d)
		if err != nil {
			s.unavailable(w, "store", err)
			return
		}
		writeJSON(w, http.StatusOK, Answer{Decision: *dec})
	case pending:
		writeJSON(w, http.StatusAccepted, apiError{Error: "pending", Detail: "the payment is being decided"})
	default:
		writeError(w, http.StatusNotFound, "not_found", "no decision for this payment through the API")
	}
}

func (s *Server) deadline(r *http.Request) (time.Duration, error) {
	h := r.Header.Get(HeaderDeadline)
	if h == "" {
		return s.cfg.Deadline, nil
	}
	ms, err := strconv.Atoi(h)
	if err != nil || ms < 1 {
		return 0, fmt.Errorf("%s: want a positive number of milliseconds", HeaderDeadline)
	}
	return min(time.Duration(ms)*time.Millisecond, s.cfg.MaxDeadline), nil
}

// unavailable answers 503 without the cause, which goes to the log.
func (s *Server) unavailable(w http.ResponseWriter, part string, err error) {
	s.cfg.Log.Error("api: request failed", "part", part, "err", err)
	s.cfg.Metrics.Requests.WithLabelValues("unavailable").Inc()
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "unavailable", "try again; posting the same payment again is safe")
}

type apiError struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func writeError(w http.ResponseWriter, code int, kind, detail string) {
	writeJSON(w, code, apiError{Error: kind, Detail: detail})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
