package console

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/logging"
	"github.com/fraudpipe/fraudpipe/topics"
)

// The SMS reply webhook, POST /sms/reply: a customer answers the SMS that carried a "Was this you?" link with YES
// or NO, and the SMS provider (Twilio, or one speaking its webhook format) posts the reply here, signed. The reply
// answers the newest link sent to the number it comes from (sms-confirmations, written by the notifier once an
// SMS is sent), and becomes a customer answer like a click on the link's page, on channel "sms". The answer goes
// back as TwiML, which the provider sends to the customer.
//
// Refusals tell nothing: a bad signature is a bare 403; an unknown number, an expired or forged link all get the
// same neutral message. The log says the reason, with the number masked.

// SMSReplies configures the SMS reply webhook; nil in Config turns it off.
type SMSReplies struct {
	// AuthToken is the provider's auth token (FRAUDPIPE_TWILIO_AUTH_TOKEN): it keys the X-Twilio-Signature.
	AuthToken string
	// URL is the webhook's public address exactly as entered at the provider: the signature covers it, and behind
	// a reverse proxy the console cannot know it from the request.
	URL string
	// Links is the index of the links sent by SMS.
	Links *SMSLinks

	mu      sync.Mutex
	replied map[string]string // MessageSid: what it was answered, so a replayed request records nothing again
	order   []string          // MessageSids oldest first, to bound replied
}

// maxReplied bounds the replay memory: the provider sends a reply once (it retries only a failed connection, at
// once), and the saga counts an alert's first answer only, so older entries guard nothing.
const maxReplied = 10000

// NewSMSReplies checks the webhook's settings.
func NewSMSReplies(authToken, publicURL string, links *SMSLinks) (*SMSReplies, error) {
	if authToken == "" {
		return nil, errors.New("sms replies: no auth token to check the provider's signatures with")
	}
	if u, err := url.Parse(publicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sms replies: the public URL %q is not an http(s) URL", publicURL)
	}
	if links == nil {
		return nil, errors.New("sms replies: no index of the links sent by SMS")
	}
	return &SMSReplies{AuthToken: authToken, URL: publicURL, Links: links, replied: map[string]string{}}, nil
}

// SMSLinks is the console's index of the sms-confirmations topic: a number's key (confirm.Signer.PhoneKey) to the
// sealed token of the newest link sent there. Every console instance holds all of it, rebuilt from the compacted
// topic at start, since any instance may get any reply. It keeps live links only: the topic keeps every number's
// newest link, expired or not, and a console must not grow with every number ever sent an SMS.
type SMSLinks struct {
	signer *confirm.Signer
	now    func() time.Time
	ready  <-chan struct{}

	mu      sync.RWMutex
	tokens  map[string]string
	applied int // records since the last sweep
}

// sweepEvery is how many records the index takes between sweeps of its expired links: a sweep costs one Verify
// per link held, so it is paid for by as many records.
const sweepEvery = 4096

// NewSMSLinks returns an empty index of links that signer opens, that answers lookups once ready is closed (the
// topic read up to its end as of the start): before that, a number's newest link may not be in yet.
func NewSMSLinks(signer *confirm.Signer, now func() time.Time, ready <-chan struct{}) *SMSLinks {
	return &SMSLinks{signer: signer, now: now, ready: ready, tokens: map[string]string{}}
}

// Apply takes one record of sms-confirmations: the number's newest link, or, with no value, none. A link that no
// longer opens (expired, or not sealed with this key) replaces the older one all the same: it is the newest the
// customer got, and a reply must not answer an older one.
func (l *SMSLinks) Apply(key, value []byte) {
	var v topics.SMSConfirmation
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.tokens, string(key))
	if len(value) > 0 && json.Unmarshal(value, &v) == nil && v.Token != "" && l.opens(v.Token) {
		l.tokens[string(key)] = v.Token
	}
	if l.applied++; l.applied >= sweepEvery && l.applied >= len(l.tokens) {
		l.applied = 0
		maps.DeleteFunc(l.tokens, func(_, tok string) bool { return !l.opens(tok) })
	}
}

func (l *SMSLinks) opens(token string) bool {
	_, err := l.signer.Verify(token, l.now())
	return err == nil
}

// Len is how many live links the index holds.
func (l *SMSLinks) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.tokens)
}

// errLinksLoading is a lookup before the index has caught up with the topic.
var errLinksLoading = errors.New("the links sent by SMS are still being read")

func (l *SMSLinks) lookup(key string) (string, bool, error) {
	select {
	case <-l.ready:
	default:
		return "", false, errLinksLoading
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	tok, ok := l.tokens[key]
	return tok, ok, nil
}

// twilioSignature is the X-Twilio-Signature of a POST of form to fullURL, as Twilio computes it: the URL, then
// each parameter's name and value, by name in byte order (a repeated name's values in order too), HMAC-SHA1
// under the auth token, base64.
func twilioSignature(authToken, fullURL string, form url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range slices.Sorted(maps.Keys(form)) {
		for _, v := range slices.Sorted(slices.Values(form[name])) {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// signed reports whether r's X-Twilio-Signature is the one for its form at the configured URL. As Twilio's own
// libraries do, it accepts the URL with and without the scheme's default port: Twilio has signed either.
func (sr *SMSReplies) signed(r *http.Request) bool {
	got := []byte(r.Header.Get("X-Twilio-Signature"))
	if len(got) == 0 {
		return false
	}
	for _, u := range urlVariants(sr.URL) {
		if hmac.Equal(got, []byte(twilioSignature(sr.AuthToken, u, r.PostForm))) {
			return true
		}
	}
	return false
}

// urlVariants is the URL as given, with its scheme's default port, and without a port.
func urlVariants(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	if u.Port() == "" && port != "" {
		with := *u
		with.Host = u.Host + ":" + port
		out = append(out, with.String())
	} else if u.Port() == port {
		without := *u
		without.Host = u.Hostname()
		out = append(out, without.String())
	}
	return out
}

// repeated returns what a MessageSid was answered before.
func (sr *SMSReplies) repeated(sid string) (string, bool) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	reply, ok := sr.replied[sid]
	return reply, ok
}

func (sr *SMSReplies) remember(sid, reply string) {
	if sid == "" {
		return
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if _, ok := sr.replied[sid]; ok {
		return
	}
	sr.replied[sid] = reply
	sr.order = append(sr.order, sid)
	if len(sr.order) > maxReplied {
		delete(sr.replied, sr.order[0])
		sr.order = sr.order[1:]
	}
}

// The replies' words, after lower-casing and dropping punctuation other than apostrophes. Only these count:
// anything else is asked again, since "no" blocks a card and a guess must not.
var (
	replyYes = []string{"yes", "y", "yeah", "yep", "yup", "ok", "okay", "it was me", "that was me", "was me", "it's me",
		"its me", "me", "yes it was me", "yes that was me", "yes me", "mine", "it's mine", "correct"}
	replyNo = []string{"no", "n", "nope", "not me", "it was not me", "it wasn't me", "it wasnt me", "wasn't me",
		"wasnt me", "that wasn't me", "that was not me", "no it wasn't me", "no it was not me", "no not me",
		"not mine", "fraud"}
)

// parseReply reads an SMS reply as an answer.
func parseReply(body string) (topics.Answer, bool) {
	words := strings.FieldsFunc(strings.ToLower(strings.ReplaceAll(body, "’", "'")), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
	s := strings.Join(words, " ")
	switch {
	case slices.Contains(replyYes, s):
		return topics.AnswerConfirmed, true
	case slices.Contains(replyNo, s):
		return topics.AnswerDenied, true
	}
	return "", false
}

// What the customer is told.
const (
	smsReplyUnclear = "Please reply YES if you made the payment, or NO if you did not."
	// smsReplyUnknown is the one answer to a reply that matches no valid link: the number has none, or its link
	// expired or does not open. It does not say which.
	smsReplyUnknown = "We could not match your reply to a payment waiting for your answer. If you are worried about your card, call your bank."
)

func smsReplyRecorded(a topics.Answer, l confirm.Link) string {
	if a == topics.AnswerConfirmed {
		return fmt.Sprintf("Thank you. We noted that you made the payment (Ref %s); it will go through.", l.AlertID)
	}
	msg := fmt.Sprintf("Thank you. We noted that you did not make the payment (Ref %s); it stays blocked", l.AlertID)
	if l.CardID != "" {
		return msg + " and we are blocking your card."
	}
	return msg + "."
}

// twiml answers the provider with a message for the customer.
func twiml(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	b, _ := xml.Marshal(struct { // a struct of a string cannot fail
		XMLName xml.Name `xml:"Response"`
		Message string   `xml:"Message"`
	}{Message: message})
	w.Write([]byte(xml.Header))
	w.Write(b)
}

// maxSMSReplyBytes bounds a webhook request: Twilio's carry some twenty short parameters, and a long SMS body.
const maxSMSReplyBytes = 16 << 10

func (s *Server) smsReply(w http.ResponseWriter, r *http.Request) {
	sr := s.cfg.SMSReplies
	if sr == nil || s.cfg.Confirm == nil {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSMSReplyBytes)
	if err := r.ParseForm(); err != nil {
		s.cfg.Log.Warn("sms reply refused", "reason", "unreadable form", "remote", r.RemoteAddr)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	from, sid := r.PostForm.Get("From"), r.PostForm.Get("MessageSid")
	log := s.cfg.Log.With("from", logging.MaskPhone(from), "message_sid", sid)
	if !sr.signed(r) {
		log.Warn("sms reply refused", "reason", "bad signature", "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if reply, ok := sr.repeated(sid); ok {
		log.Info("sms reply repeated; recorded before")
		twiml(w, http.StatusOK, reply)
		return
	}
	ans, ok := parseReply(r.PostForm.Get("Body"))
	if !ok {
		log.Info("sms reply not understood", "reason", "neither yes nor no")
		twiml(w, http.StatusOK, smsReplyUnclear)
		return
	}
	tok, found, err := sr.Links.lookup(s.cfg.Confirm.PhoneKey(from))
	if err != nil {
		// The provider then reports an error, or tries its fallback URL: better than telling the customer that
		// nothing waits for their answer.
		log.Warn("sms reply not taken", "reason", err.Error())
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	if !found {
		log.Warn("sms reply refused", "reason", "no link sent to this number")
		twiml(w, http.StatusOK, smsReplyUnknown)
		return
	}
	l, err := s.cfg.Confirm.Verify(tok, s.cfg.Now())
	if err != nil {
		reason := "forged link"
		if errors.Is(err, confirm.ErrExpired) {
			reason = "expired link"
		}
		log.Warn("sms reply refused", "reason", reason)
		twiml(w, http.StatusOK, smsReplyUnknown)
		return
	}
	a := topics.CustomerAnswer{AlertID: l.AlertID, AccountID: l.AccountID, PaymentID: l.PaymentID, CardID: l.CardID,
		Action: topics.Action(l.Action), Answer: ans, Channel: "sms", AnsweredAt: s.cfg.Now().UTC()}
	if err := s.cfg.Answers(r.Context(), a); err != nil {
		log.Error("customer answer not recorded", "alert", l.AlertID, "err", err)
		http.Error(w, "not recorded", http.StatusServiceUnavailable)
		return
	}
	reply := smsReplyRecorded(ans, l)
	sr.remember(sid, reply)
	log.Info("customer answer", "alert", l.AlertID, "account", l.AccountID, "answer", ans, "channel", "sms")
	twiml(w, http.StatusOK, reply)
}
