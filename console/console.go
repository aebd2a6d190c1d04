// Package console is the analysts' web console: sign-in, the live feed of alerts, and, with the cases group's
// table, the review queue, case pages with the analysts' actions, and the rules' quality. It serves server-rendered
// pages with a little JavaScript (the live feed's EventSource), behind its own sign-in or a reverse proxy's.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config is what the console needs.
type Config struct {
	// Users may sign in with a password. Ignored when ProxyHeader is set.
	Users Users
	// ProxyHeader names the header a reverse proxy puts the signed-in user in (e.g. X-Forwarded-User). The proxy
	// must authenticate every request and overwrite the header: the console trusts it as it comes.
	ProxyHeader string
	// SessionKey signs session cookies (32 bytes or more); consoles sharing it share sessions. nil: a random key,
	// so sessions end with the process.
	SessionKey []byte
	// SessionTTL is how long a sign-in lasts; 0: 12 hours.
	SessionTTL time.Duration
	// Alerts feeds the live view.
	Alerts *Hub
	// Confirm checks customers' "Was this you?" links (nil: no confirmation page), and Answers records their
	// answers (the customer-answers topic).
	Confirm *confirm.Signer
	Answers func(context.Context, topics.CustomerAnswer) error
	// SMSReplies takes customers' YES/NO replies to the SMS that carried the link (nil: off; needs Confirm).
	SMSReplies *SMSReplies
	// Cases are the cases group's table (nil: no queue, case pages or rule quality), and CaseCommands sends
	// analysts' actions to the case-commands topic. CaseWait bounds how long an action waits to show its effect
	// (0: 3 s).
	Cases        CaseStore
	CaseCommands func(context.Context, topics.CaseCommand) error
	CaseWait     time.Duration
	Log          *slog.Logger
	// Now is the clock (tests set it).
	Now func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	cfg      Config
	sessions sessions
	pages    *template.Template
	handler  http.Handler

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // sign-in attempts per client address
}

// New builds the console.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Alerts == nil {
		cfg.Alerts = NewHub(100)
	}
	if cfg.Confirm != nil && cfg.Answers == nil {
		return nil, fmt.Errorf("console: a confirmation page needs somewhere to record answers")
	}
	if cfg.Cases != nil && cfg.CaseCommands == nil {
		return nil, errNoCommands
	}
	if cfg.CaseWait <= 0 {
		cfg.CaseWait = defaultCaseWait
	}
	if cfg.ProxyHeader == "" && len(cfg.Users) == 0 {
		return nil, fmt.Errorf("console: no users and no proxy header: nobody could sign in")
	}
	if cfg.SessionKey == nil {
		k, err := newSessionKey()
		if err != nil {
			return nil, err
		}
		cfg.SessionKey = k
	} else if len(cfg.SessionKey) < 32 {
		return nil, fmt.Errorf("console: the session key has %d bytes, at least 32 are needed", len(cfg.SessionKey))
	}
	pages, err := template.New("").Funcs(template.FuncMap{"amount": rules.FormatAmount, "expiry": linkExpiry, "age": age, "casePath": casePath,
		"mul100": func(f float64) float64 { return 100 * f }}).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	secret := func(user string) ([]byte, bool) { h, ok := cfg.Users[user]; return h, ok }
	s := &Server{cfg: cfg, sessions: sessions{key: cfg.SessionKey, ttl: cfg.SessionTTL, now: cfg.Now, secret: secret}, pages: pages,
		limiters: map[string]*rate.Limiter{}}
	static, _ := fs.Sub(assets, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.page(s.live))
	mux.HandleFunc("GET /alerts/stream", s.api(s.stream))
	mux.HandleFunc("GET /confirm/{token}", s.confirmPage)
	mux.HandleFunc("POST /confirm/{token}", s.confirmAnswer)
	mux.HandleFunc("POST /sms/reply", s.smsReply)
	s.caseRoutes(mux)
	// Cross-site requests that change something (every POST) are refused: the browser says where a request
	// comes from (Sec-Fetch-Site, Origin), and the session cookie is SameSite=Strict besides.
	s.handler = secureHeaders(http.NewCrossOriginProtection().Handler(mux))
	return s, nil
}

// ServeHTTP serves the console.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// user returns who makes r, "" if nobody signed in.
func (s *Server) user(r *http.Request) string {
	if s.cfg.ProxyHeader != "" {
		return r.Header.Get(s.cfg.ProxyHeader)
	}
	return s.sessions.user(r)
}

// page serves a page to a signed-in user and sends anyone else to sign in.
func (s *Server) page(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.user(r)
		if u == "" {
			if s.cfg.ProxyHeader != "" {
				http.Error(w, "not signed in", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		h(w, r, u)
	}
}

// api serves a signed-in user and answers 401 to anyone else.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.user(r)
		if u == "" {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		h(w, r, u)
	}
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, name, data); err != nil {
		s.cfg.Log.Error("console page", "page", name, "err", err)
	}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ProxyHeader != "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login.html", map[string]any{})
}

// loginBurst and loginEvery bound password guesses per client address: a few in a row, then one every few seconds.
const (
	loginBurst = 5
	loginEvery = 3 * time.Second
)

func (s *Server) limiter(r *http.Request) *rate.Limiter {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[host]
	if l == nil {
		if len(s.limiters) > 10000 {
			clear(s.limiters) // bounded memory; an attacker from many addresses gains a fresh burst each
		}
		l = rate.NewLimiter(rate.Every(loginEvery), loginBurst)
		s.limiters[host] = l
	}
	return l
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ProxyHeader != "" {
		http.Error(w, "sign-in is the proxy's", http.StatusNotFound)
		return
	}
	if !s.limiter(r).AllowN(s.cfg.Now(), 1) {
		s.cfg.Log.Warn("console sign-in throttled", "remote", r.RemoteAddr)
		s.render(w, http.StatusTooManyRequests, "login.html", map[string]any{"Error": "Too many attempts. Wait a few seconds."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	if user == "" || !s.cfg.Users.check(user, password) {
		s.cfg.Log.Warn("console sign-in refused", "remote", r.RemoteAddr)
		s.render(w, http.StatusUnauthorized, "login.html", map[string]any{"Error": "Wrong user or password."})
		return
	}
	s.sessions.issue(w, r, user)
	s.cfg.Log.Info("console sign-in", "user", user, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if u := s.user(r); u != "" {
		s.cfg.Log.Info("console sign-out", "user", u)
	}
	clearSession(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) live(w http.ResponseWriter, r *http.Request, user string) {
	s.render(w, http.StatusOK, "live.html", map[string]any{"User": user, "Alerts": s.cfg.Alerts.Recent(),
		"SignOut": s.cfg.ProxyHeader == "", "Nav": "live", "Cases": s.cfg.Cases != nil})
}

// stream is the live feed: server-sent events, one "alert" event per alert, as JSON.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, _ string) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	feed, cancel := s.cfg.Alerts.subscribe()
	defer cancel()
	fmt.Fprint(w, "retry: 2000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case a, ok := <-feed:
			if !ok {
				return // fell behind; the browser reconnects
			}
			b, err := json.Marshal(liveAlert(a))
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: alert\ndata: %s\n\n", b)
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// liveAlert is what the live feed shows of an alert.
func liveAlert(a topics.Alert) map[string]any {
	names := make([]string, len(a.Rules))
	for i, f := range a.Rules {
		names[i] = f.Name
	}
	return map[string]any{
		"id": a.ID, "account": a.AccountID, "payment": a.PaymentID, "action": a.Action, "score": a.Score,
		"rules": names, "amount": rules.FormatAmount(a.Payment.Amount, a.Payment.Currency), "merchant": a.Payment.MerchantID,
		"detected_at": a.DetectedAt.UTC().Format(time.RFC3339), "late": a.Late,
	}
}
