package console

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/cases"
	"github.com/fraudpipe/fraudpipe/topics"
)

// memCases plays the cases group and its view for the console's tests: commands are applied by the same pure
// logic, on another goroutine as the group would, and reads return copies as a view decodes them.
type memCases struct {
	mu       sync.Mutex
	accounts map[string]*cases.Account
	sent     []topics.CaseCommand
	drop     bool // commands are sent but never handled (the group is down)
}

func newMemCases() *memCases { return &memCases{accounts: map[string]*cases.Account{}} }

func (m *memCases) account(id string) *cases.Account {
	if m.accounts[id] == nil {
		m.accounts[id] = &cases.Account{AccountID: id}
	}
	return m.accounts[id]
}

func (m *memCases) alert(a topics.Alert) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cases.OnAlert(m.account(a.AccountID), a, "")
}

func (m *memCases) answer(a topics.CustomerAnswer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cases.OnAnswer(m.account(a.AccountID), a, "")
}

func (m *memCases) command(_ context.Context, c topics.CaseCommand) error {
	m.mu.Lock()
	m.sent = append(m.sent, c)
	drop := m.drop
	m.mu.Unlock()
	if !drop {
		go func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			cases.OnCommand(m.account(c.AccountID), c, "")
		}()
	}
	return nil
}

func copyOf(a *cases.Account) *cases.Account {
	b, _ := json.Marshal(a)
	var c cases.Account
	json.Unmarshal(b, &c)
	return &c
}

func (m *memCases) Account(id string) (*cases.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.accounts[id]; a != nil {
		return copyOf(a), nil
	}
	return nil, nil
}

func (m *memCases) Each(yield func(*cases.Account)) error {
	m.mu.Lock()
	var all []*cases.Account
	for _, a := range m.accounts {
		all = append(all, copyOf(a))
	}
	m.mu.Unlock()
	for _, a := range all {
		yield(a)
	}
	return nil
}

var caseT0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

func caseAlert(account, payment string, minute int, action topics.Action, rules ...string) topics.Alert {
	var fired []topics.Fired
	for _, r := range rules {
		fired = append(fired, topics.Fired{Name: r, Score: 50, Reason: "5 payments in 5m > limit 4"})
	}
	at := caseT0.Add(time.Duration(minute) * time.Minute)
	return topics.Alert{ID: "alert_" + payment, AccountID: account, PaymentID: payment, Action: action, Score: 50 * len(rules), Rules: fired,
		Payment: topics.Payment{ID: payment, AccountID: account, Amount: 12345, Currency: "EUR", MerchantID: "m_" + payment, Country: "DE",
			Timestamp: at.Add(-time.Second)}, DetectedAt: at}
}

func casesConsole(t *testing.T, store *memCases) string {
	t.Helper()
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Cases: store, CaseCommands: store.command, CaseWait: 2 * time.Second,
		Now: func() time.Time { return caseT0.Add(25 * time.Hour) }})
	return ts.URL
}

// The queue lists open cases only, filtered by action, rule and age, newest or oldest first.
func TestTheReviewQueue(t *testing.T) {
	store := newMemCases()
	store.alert(caseAlert("acct_old", "p1", 0, topics.ActionReview, "rapid-fire"))
	store.alert(caseAlert("acct_new", "p2", 120, topics.ActionBlock, "big-ticket"))
	store.alert(caseAlert("acct_new", "p3", 121, topics.ActionReview, "globetrotter"))
	store.alert(caseAlert("acct_closed", "p4", 5, topics.ActionBlock, "big-ticket"))
	store.command(context.Background(), topics.CaseCommand{ID: "c", Type: topics.CommandClose, AccountID: "acct_closed", CaseID: "acct_closed:1", By: "bob"})
	base := casesConsole(t, store)
	c := client(t)
	if resp, _ := get(t, c, base+"/cases"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the queue signed out: %d", resp.StatusCode)
	}
	signIn(t, c, base, "alice", testPassword)
	waitUntil(t, "the close applied", func() bool { a, _ := store.Account("acct_closed"); return !a.Current.Open })
	for _, tc := range []struct{ query, want string }{
		{"", "acct_new acct_old"},
		{"?sort=oldest", "acct_old acct_new"},
		{"?action=block", "acct_new"},
		{"?action=review", "acct_old"},
		{"?rule=globetrotter", "acct_new"},
		{"?age=24h", "acct_old"},
		{"?rule=nothing", ""},
	} {
		resp, body := get(t, c, base+"/cases"+tc.query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", tc.query, resp.StatusCode)
		}
		var got []string
		for _, part := range strings.Split(body, `data-case="`)[1:] {
			id, _, _ := strings.Cut(part, `"`)
			got = append(got, strings.TrimSuffix(id, ":1"))
		}
		if strings.Join(got, " ") != tc.want {
			t.Fatalf("queue%s lists %v, want %q", tc.query, got, tc.want)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// post submits a form of the case page as a browser on the console's own page would.
func post(t *testing.T, c *http.Client, u string, form url.Values, site string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", site)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The case page shows the alerts with the rules' reasons, the payments, the customer's answer and the history;
// assigning and a verdict are commands signed with the user that land in the history once, however often the
// form is sent; a cross-site form is refused.
func TestTheCasePageAndItsActions(t *testing.T) {
	store := newMemCases()
	store.alert(caseAlert("acct_1", "p1", 0, topics.ActionBlock, "big-ticket", "rapid-fire"))
	a2 := caseAlert("acct_1", "p2", 3, topics.ActionReview, "rapid-fire")
	// The account's clean payment before it, as the detector held it when it alerted.
	a2.Recent = []topics.RecentPayment{{Payment: topics.Payment{ID: "p0", AccountID: "acct_1", Amount: 777, Currency: "EUR",
		MerchantID: "m_clean", Timestamp: caseT0.Add(-time.Minute)}, Score: 0}}
	store.alert(a2)
	store.answer(topics.CustomerAnswer{AlertID: "alert_p1", AccountID: "acct_1", PaymentID: "p1", Answer: topics.AnswerDenied, AnsweredAt: caseT0.Add(time.Hour)})
	base := casesConsole(t, store)
	c := client(t)
	signIn(t, c, base, "alice", testPassword)
	page := base + "/cases/acct_1/1"
	resp, body := get(t, c, page)
	for _, want := range []string{"<strong>rapid-fire</strong> +50: 5 payments in 5m &gt; limit 4", "123.45 EUR", "m_p2", "customer-denied", "denied (p1,", "Assign to me", "nobody",
		`data-payment="p0"`, "7.77 EUR", "m_clean"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("the case page lacks %q: %d\n%s", want, resp.StatusCode, body)
		}
	}
	// Newest first: p2, p1, then the clean p0.
	if i2, i1, i0 := strings.Index(body, `data-payment="p2"`), strings.Index(body, `data-payment="p1"`), strings.Index(body, `data-payment="p0"`); !(i2 < i1 && i1 < i0) {
		t.Fatalf("payments out of order: p2 at %d, p1 at %d, p0 at %d", i2, i1, i0)
	}
	// Account ids are the producers': any character, a slash included, makes a working link.
	store.alert(caseAlert("shop/42 ü", "p9", 0, topics.ActionReview, "big-ticket"))
	_, queue := get(t, c, base+"/cases")
	href := regexp.MustCompile(`href="(/cases/shop[^"]*)"`).FindStringSubmatch(queue)
	if href == nil {
		t.Fatalf("no link to the case of shop/42 ü:\n%s", queue)
	}
	if resp, body := get(t, c, base+html.UnescapeString(href[1])); resp.StatusCode != http.StatusOK || !strings.Contains(body, "m_p9") {
		t.Fatalf("the case of shop/42 ü at %s: %d", href[1], resp.StatusCode)
	}
	for _, missing := range []string{"/cases/acct_1/2", "/cases/acct_9/1", "/cases/acct_1/x"} {
		if resp, _ := get(t, c, base+missing); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %d", missing, resp.StatusCode)
		}
	}
	form := url.Values{"form": {"f1"}, "op": {"verdict"}, "verdict": {"fraud"}, "note": {"card used abroad"}}
	if resp := post(t, c, page, form, "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site verdict: %d", resp.StatusCode)
	}
	for range 2 {
		if resp := post(t, c, page, form, "same-origin"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/cases/acct_1/1" {
			t.Fatalf("verdict: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp := post(t, c, page, url.Values{"form": {"f1"}, "op": {"assign"}}, "same-origin"); resp.Header.Get("Location") != "/cases/acct_1/1" {
		t.Fatalf("assign: %q", resp.Header.Get("Location"))
	}
	_, body = get(t, c, page)
	if strings.Count(body, `data-event="verdict"`) != 1 || !strings.Contains(body, "“card used abroad”") ||
		!strings.Contains(body, `data-assignee="alice">alice</dd>`) || strings.Contains(body, "Assign to me") {
		t.Fatalf("after the verdict and the assignment:\n%s", body)
	}
	store.mu.Lock()
	sent := store.sent
	store.mu.Unlock()
	if len(sent) != 3 || sent[0].ID != sent[1].ID || sent[0].By != "alice" || sent[2].Assignee != "alice" {
		t.Fatalf("commands sent %+v", sent)
	}
	if resp := post(t, c, page, url.Values{"form": {"f2"}, "op": {"verdict"}, "verdict": {"maybe"}}, "same-origin"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an invalid verdict: %d", resp.StatusCode)
	}
}

// An action the case no longer allows says so; one the group has not handled within the wait says it is pending.
func TestActionsThatDoNotLand(t *testing.T) {
	store := newMemCases()
	store.alert(caseAlert("acct_1", "p1", 0, topics.ActionBlock, "big-ticket"))
	base := casesConsole(t, store)
	c := client(t)
	signIn(t, c, base, "alice", testPassword)
	page := base + "/cases/acct_1/1"
	post(t, c, page, url.Values{"form": {"a"}, "op": {"close"}}, "same-origin")
	// A second analyst's page, loaded before the close, still offers a verdict.
	if resp := post(t, c, page, url.Values{"form": {"b"}, "op": {"verdict"}, "verdict": {"fraud"}}, "same-origin"); resp.Header.Get("Location") != "/cases/acct_1/1?notice=conflict" {
		t.Fatalf("a verdict on a closed case: %q", resp.Header.Get("Location"))
	}
	if _, body := get(t, c, page+"?notice=conflict"); !strings.Contains(body, "was not applied") || !strings.Contains(body, "Reopen case") {
		t.Fatalf("the conflict notice:\n%s", body)
	}
	store.mu.Lock()
	store.drop = true
	store.mu.Unlock()
	start := time.Now()
	if resp := post(t, c, page, url.Values{"form": {"c"}, "op": {"reopen"}}, "same-origin"); resp.Header.Get("Location") != "/cases/acct_1/1?notice=pending" {
		t.Fatalf("an unhandled command: %q", resp.Header.Get("Location"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the unhandled command held the request %v", d)
	}
}

// The quality table scores each rule on the settled cases.
func TestTheRuleQualityTable(t *testing.T) {
	store := newMemCases()
	store.alert(caseAlert("acct_1", "p1", 0, topics.ActionBlock, "big-ticket"))
	store.alert(caseAlert("acct_2", "p2", 0, topics.ActionBlock, "big-ticket"))
	store.answer(topics.CustomerAnswer{AlertID: "alert_p1", AccountID: "acct_1", PaymentID: "p1", Answer: topics.AnswerDenied})
	store.answer(topics.CustomerAnswer{AlertID: "alert_p2", AccountID: "acct_2", PaymentID: "p2", Answer: topics.AnswerConfirmed})
	base := casesConsole(t, store)
	c := client(t)
	signIn(t, c, base, "alice", testPassword)
	_, body := get(t, c, base+"/quality")
	if !strings.Contains(body, `<tr data-rule="big-ticket"><td>big-ticket</td><td>1</td><td>1</td><td>50%</td>`) || !strings.Contains(body, "123.45 EUR") {
		t.Fatalf("quality:\n%s", body)
	}
}
