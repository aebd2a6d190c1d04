package console

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fraudpipe/fraudpipe/topics"
)

const testPassword = "correct horse battery"

func TestMain(m *testing.M) {
	hashCost = bcrypt.MinCost
	os.Exit(m.Run())
}

func testUsers(t *testing.T) Users {
	t.Helper()
	h, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseUsers("alice:" + h)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newTestConsole(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// client follows no redirects, so each answer can be checked, and keeps cookies.
func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func signIn(t *testing.T, c *http.Client, base, user, password string) *http.Response {
	t.Helper()
	resp, err := c.PostForm(base+"/login", url.Values{"user": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSignInWithAPasswordFromTheUsersList(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	hub := NewHub(10)
	hub.Publish(topics.Alert{ID: "alert_1", AccountID: "acct_7", PaymentID: "pay_9", Action: topics.ActionBlock, Score: 90,
		Rules: []topics.Fired{{Name: "big_ticket"}}, Payment: topics.Payment{Amount: 125050, Currency: "EUR", MerchantID: "m_1"}})
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Alerts: hub, Now: func() time.Time { return now }, SessionTTL: time.Hour})
	c := client(t)

	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("signed out: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, wrong := range [][2]string{{"alice", "wrong password"}, {"mallory", testPassword}, {"", ""}} {
		if resp := signIn(t, c, ts.URL, wrong[0], wrong[1]); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Fatalf("sign-in as %q with a wrong password: %d with cookies %v", wrong[0], resp.StatusCode, resp.Cookies())
		}
	}
	if resp := signIn(t, c, ts.URL, "alice", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	resp, body := get(t, c, ts.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice") || !strings.Contains(body, "pay_9") || !strings.Contains(body, "1,250.50 EUR") {
		t.Fatalf("signed in: %d\n%s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}

	// The session ends at its expiry.
	now = now.Add(time.Hour)
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the session's expiry: %d", resp.StatusCode)
	}
}

// A session cookie is only as good as its signature: another user's name, another expiry or another console's
// key are refused.
func TestForgedSessionsAreRefused(t *testing.T) {
	_, ts := newTestConsole(t, Config{Users: testUsers(t)})
	c := client(t)
	signIn(t, c, ts.URL, "alice", testPassword)
	u, _ := url.Parse(ts.URL)
	good := c.Jar.Cookies(u)[0].Value
	parts := strings.Split(good, "|")
	forged := []string{
		"Ym9i|" + parts[1] + "|" + parts[2],  // "bob" with alice's MAC
		parts[0] + "|9999999999|" + parts[2], // a longer session
		parts[0] + "|" + parts[1] + "|AAAA",  // no MAC
		"garbage",
	}
	_, other := newTestConsole(t, Config{Users: testUsers(t)}) // another key
	for _, v := range forged {
		req, _ := http.NewRequest("GET", ts.URL+"/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("forged cookie %q: %d", v, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", other.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: good})
	if resp, _ := client(t).Do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another console's session: %d", resp.StatusCode)
	}
}

// A page on another site cannot make a signed-in analyst's browser sign in, out, or change anything.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	_, ts := newTestConsole(t, Config{Users: testUsers(t)})
	c := client(t)
	signIn(t, c, ts.URL, "alice", testPassword)
	for _, path := range []string{"/logout", "/login"} {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader("user=alice&password="+url.QueryEscape(testPassword)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site POST %s: %d, want 403", path, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the cross-site sign-out must not have signed out: %d", resp.StatusCode)
	}
}

func TestPasswordGuessesAreThrottled(t *testing.T) {
	now := time.Now()
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Now: func() time.Time { return now }})
	c := client(t)
	codes := []int{}
	for range loginBurst + 1 {
		codes = append(codes, signIn(t, c, ts.URL, "alice", "guess").StatusCode)
	}
	if codes[loginBurst-1] != http.StatusUnauthorized || codes[loginBurst] != http.StatusTooManyRequests {
		t.Fatalf("answers to %d guesses: %v", loginBurst+1, codes)
	}
	if resp := signIn(t, c, ts.URL, "alice", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right password during the throttle: %d, want 429 (no oracle)", resp.StatusCode)
	}
	now = now.Add(loginEvery)
	if resp := signIn(t, c, ts.URL, "alice", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right password once the throttle let up: %d", resp.StatusCode)
	}
}

func TestBehindAnAuthenticatingProxy(t *testing.T) {
	_, ts := newTestConsole(t, Config{ProxyHeader: "X-Forwarded-User"})
	req, _ := http.NewRequest("GET", ts.URL+"/", nil)
	req.Header.Set("X-Forwarded-User", "bob@bank.example")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "bob@bank.example") {
		t.Fatalf("with the proxy's header: %d", resp.StatusCode)
	}
	if resp, _ := get(t, client(t), ts.URL+"/"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the header: %d, want 401", resp.StatusCode)
	}
	if resp := signIn(t, client(t), ts.URL, "alice", testPassword); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("password sign-in behind a proxy: %d, want 404", resp.StatusCode)
	}
}

func TestTheUsersListHoldsHashesOnly(t *testing.T) {
	_, err := ParseUsers("alice:hunter2hunter2")
	if err == nil || !strings.Contains(err.Error(), `"alice"`) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a plain password: %v (must name the user, never the secret)", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("a console nobody can sign in to was built")
	}
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("a short password was hashed")
	}
}

// The live feed sends every alert published while the page is open, as a server-sent event.
func TestTheLiveFeedStreamsAlerts(t *testing.T) {
	hub := NewHub(10)
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Alerts: hub})
	c := client(t)
	if resp, _ := get(t, c, ts.URL+"/alerts/stream"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the feed signed out: %d", resp.StatusCode)
	}
	signIn(t, c, ts.URL, "alice", testPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/alerts/stream", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	// Published until the subscription is in place: the feed only carries alerts from its opening on.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			hub.Publish(topics.Alert{ID: "alert_live", PaymentID: "pay_live", Action: topics.ActionReview, Score: 55,
				Payment: topics.Payment{Amount: 999, Currency: "USD"}})
		case d, ok := <-events:
			if !ok {
				t.Fatal("the feed ended")
			}
			if !strings.Contains(d, `"id":"alert_live"`) || !strings.Contains(d, `"amount":"9.99 USD"`) {
				t.Fatalf("event %s", d)
			}
			return
		case <-ctx.Done():
			t.Fatal("no alert reached the feed")
		}
	}
}

// A feed that does not keep up is closed instead of holding up the others (the browser reconnects).
func TestASlowFeedIsDroppedNotWaitedFor(t *testing.T) {
	hub := NewHub(3)
	slow, _ := hub.subscribe()
	fast, cancel := hub.subscribe()
	defer cancel()
	done := make(chan struct{})
	go func() {
		for range fast {
		}
		close(done)
	}()
	for i := range 200 {
		hub.Publish(topics.Alert{ID: string(rune('a' + i%26))})
	}
	n := 0
	for range slow {
		n++
	}
	if n != 64 {
		t.Fatalf("the slow feed got %d alerts before it was closed, want its buffer of 64", n)
	}
	if got := len(hub.Recent()); got != 3 {
		t.Fatalf("recent holds %d, want 3", got)
	}
	cancel()
	<-done
}

// Sessions are bound to the user's entry: removing the user or changing the password ends them on every console.
func TestRemovingAUserOrChangingThePasswordEndsTheirSessions(t *testing.T) {
	key := []byte("a shared session key of 32 bytes or more")
	users := testUsers(t)
	_, ts := newTestConsole(t, Config{Users: users, SessionKey: key})
	c := client(t)
	signIn(t, c, ts.URL, "alice", testPassword)
	u, _ := url.Parse(ts.URL)
	cookie := c.Jar.Cookies(u)[0]
	newHash, _ := HashPassword("another long password")
	bob, _ := HashPassword("bob's long password")
	for name, us := range map[string]Users{"same users": users, "alice removed": {"bob": []byte(bob)}, "new password": {"alice": []byte(newHash)}} {
		_, other := newTestConsole(t, Config{Users: us, SessionKey: key})
		req, _ := http.NewRequest("GET", other.URL+"/", nil)
		req.AddCookie(cookie)
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: http.StatusOK, false: http.StatusSeeOther}[name == "same users"]; resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", name, resp.StatusCode, want)
		}
	}
}
