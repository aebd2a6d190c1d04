package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Users maps user names to bcrypt hashes of their passwords.
type Users map[string][]byte

// ParseUsers reads "name:bcrypt-hash,name:bcrypt-hash" (FRAUDPIPE_CONSOLE_USERS; `fraudpipe console hash-password`
// makes a hash). Plain passwords are refused: the list is configuration, and configuration gets copied around.
func ParseUsers(s string) (Users, error) {
	u := Users{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, hash, ok := strings.Cut(entry, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("console users: %q is not name:bcrypt-hash", cutSecret(entry))
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("console users: the password of %q is not a bcrypt hash (fraudpipe console hash-password makes one): %w", name, err)
		}
		u[name] = []byte(hash)
	}
	return u, nil
}

// cutSecret keeps an entry's name for an error message and drops what may be a password.
func cutSecret(entry string) string {
	name, _, _ := strings.Cut(entry, ":")
	return name + ":…"
}

// HashPassword returns the bcrypt hash of a password, for the users list.
func HashPassword(password string) (string, error) {
	if len(password) < 12 {
		return "", errors.New("a console password needs at least 12 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	return string(h), err
}

// hashCost is bcrypt's work factor for new hashes; tests lower it, the race detector makes each hash seconds.
var hashCost = bcrypt.DefaultCost

// dummyHash is compared against when the user does not exist, so a login takes as long for a wrong name as for a
// wrong password and does not tell which names exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such user, no such password"), hashCost)
	return h
})

// check reports whether password is user's.
func (u Users) check(user, password string) bool {
	h, ok := u[user]
	if !ok {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil
}

const sessionCookie = "fraudpipe_session"

// sessions signs and checks session cookies: "user|expiry|mac", the MAC an HMAC-SHA256 under the console's key
// over the payload and the user's password hash. Nothing is stored on the server, so any console instance with the
// same key accepts the cookie; removing a user or changing their password ends their sessions.
type sessions struct {
	key []byte
	ttl time.Duration
	now func() time.Time
	// secret returns what a user's sessions are bound to (their password hash), ok false for no such user.
	secret func(user string) ([]byte, bool)
}

func newSessionKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

func (s sessions) mac(payload string, secret []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	m.Write([]byte{0})
	m.Write(secret)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// issue sets the session cookie for user.
func (s sessions) issue(w http.ResponseWriter, r *http.Request, user string) {
	exp := s.now().Add(s.ttl).Unix()
	payload := base64.RawURLEncoding.EncodeToString([]byte(user)) + "|" + strconv.FormatInt(exp, 10)
	secret, _ := s.secret(user)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: payload + "|" + s.mac(payload, secret), Path: "/",
		MaxAge: int(s.ttl.Seconds()), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// user returns the signed-in user of r, "" if none (no cookie, a forged or expired one).
func (s sessions) user(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(c.Value, '|')
	if i < 0 {
		return ""
	}
	payload, mac := c.Value[:i], c.Value[i+1:]
	enc, expS, ok := strings.Cut(payload, "|")
	name, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil {
		return ""
	}
	secret, known := s.secret(string(name))
	if !known || subtle.ConstantTimeCompare([]byte(mac), []byte(s.mac(payload, secret))) != 1 {
		return ""
	}
	exp, err := strconv.ParseInt(expS, 10, 64)
	if err != nil || s.now().Unix() >= exp {
		return ""
	}
	return string(name)
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}
