package testenv

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is a message an SMTPServer accepted.
type Mail struct {
	From string
	To   []string
	Msg  *mail.Message
	Body string            // raw, as on the wire
	Text map[string]string // decoded parts by media type (text/plain, text/html), as a mail client shows them
}

// decodeParts reads a message's body parts, undoing multipart and quoted-printable encoding.
func decodeParts(msg *mail.Message, body []byte) map[string]string {
	out := map[string]string{}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return out
	}
	if !strings.HasPrefix(mt, "multipart/") {
		r := io.Reader(bytes.NewReader(body))
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(r)
		}
		b, _ := io.ReadAll(r)
		out[mt] = string(b)
		return out
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable parts itself
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(p)
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out[pt] = string(b)
	}
}

// SMTPServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1. Fault, when set, decides the reply to each
// DATA command: return an *smtp.SMTPError (451 temporary, 550 permanent) to refuse the message.
type SMTPServer struct {
	Host string
	Port int

	mu    sync.Mutex
	mails []Mail
	Fault func(n int) error // n counts DATA commands from 1
	datas int
}

// StartSMTP starts the server and stops it with the test.
func StartSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	s := &SMTPServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port
	return s
}

// Mails returns the accepted messages.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// SetFault replaces the fault function.
func (s *SMTPServer) SetFault(f func(n int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Fault = f
}

type smtpSession struct {
	s    *SMTPServer
	from string
	to   []string
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }
func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.datas++
	if x.s.Fault != nil {
		if err := x.s.Fault(x.s.datas); err != nil {
			return err
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(msg.Body)
	x.s.mails = append(x.s.mails, Mail{From: x.from, To: x.to, Msg: msg, Body: string(body), Text: decodeParts(msg, body)})
	return nil
}

// Temporary and Permanent are the SMTP replies tests inject.
var (
	SMTP451 = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	SMTP550 = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
)

// Request is an HTTP request a fake provider received.
type Request struct {
	Path     string
	Form     map[string]string
	User     string
	Password string
	Header   http.Header
	Body     []byte
	At       time.Time
}

// HTTPProvider is an httptest server playing an SMS provider or a push service. Respond decides each answer
// (n counts requests from 1); by default 201 Created.
type HTTPProvider struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
	respond  func(n int, w http.ResponseWriter) bool
	// Hook, when set, runs before the answer is written: e2e tests use it to kill the notifier while the
	// provider holds an accepted message.
	Hook func(n int)
}

// StartHTTPProvider starts the server and stops it with the test.
func StartHTTPProvider(t testing.TB) *HTTPProvider {
	p := &HTTPProvider{}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Server.Close)
	return p
}

// Respond sets how the provider answers: f writes a response and returns true, or returns false for the
// default 201 Created.
func (p *HTTPProvider) Respond(f func(n int, w http.ResponseWriter) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.respond = f
}

// SetHook sets Hook safely while the server runs.
func (p *HTTPProvider) SetHook(f func(n int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Hook = f
}

// Requests returns the requests received so far.
func (p *HTTPProvider) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

func (p *HTTPProvider) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The sender went away mid-request (the e2e tests kill the notifier): a real provider never accepts a
		// message it did not receive whole, so this one is not recorded either. Recording it made a push whose
		// body was cut off fail to decrypt.
		return
	}
	req := Request{Path: r.URL.Path, Form: map[string]string{}, Header: r.Header.Clone(), Body: body, At: time.Now()}
	req.User, req.Password, _ = r.BasicAuth()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ParseForm()
		for k := range r.PostForm {
			req.Form[k] = r.PostForm.Get(k)
		}
	}
	p.mu.Lock()
	p.requests = append(p.requests, req)
	n, respond, hook := len(p.requests), p.respond, p.Hook
	p.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	if respond != nil && respond(n, w) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"sid":"SM%032d","status":"queued"}`, n)
}

// PushClient is the browser side of a Web Push subscription: it holds the private key that decrypts messages.
type PushClient struct {
	priv   *ecdh.PrivateKey
	auth   []byte
	P256dh string // base64url public key, as PushSubscription.toJSON() gives it
	Auth   string
}

// NewPushClient makes a subscription key pair.
func NewPushClient() (*PushClient, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return &PushClient{priv: priv, auth: auth, P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth: base64.RawURLEncoding.EncodeToString(auth)}, nil
}

// Decrypt opens an aes128gcm Web Push body (RFC 8291, RFC 8188) as the browser would.
func (c *PushClient) Decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("push body too short")
	}
	salt, idlen := body[:16], int(body[20])
	rs := binary.BigEndian.Uint32(body[16:20])
	if len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("push header malformed")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	secret, err := c.priv.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), c.priv.PublicKey().Bytes()...), asPub.Bytes()...)
	ikm, err := hkdf.Key(sha256.New, secret, c.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, nonce, body[21+idlen:], nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// Strip the padding: the last record ends with 0x02 followed by zeros.
	i := bytes.LastIndexByte(plain, 2)
	if i < 0 {
		return nil, errors.New("no padding delimiter")
	}
	return plain[:i], nil
}
