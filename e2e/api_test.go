package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/api"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/topics"
)

var apiListening = regexp.MustCompile(`msg="decision API listening" url=(http://\S+)`)

const e2eAPIKey = "e2e-key-0123456789abcdef0123456789"

// decisionRules decide a payment by its amount and its account's countries: review above 5,000.00, block above
// 50,000.00 or at a third country within 30 minutes.
const decisionRules = `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: big-ticket, type: amount, limit: 500000, score: 60 }
  - { name: huge-ticket, type: amount, limit: 5000000, score: 90 }
  - { name: globetrotter, type: distinct, field: country, window: 30m, limit: 2, score: 80 }
`

func writeDecisionRules(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(decisionRules), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiClient posts to one API instance.
type apiClient struct {
	base string
	http *http.Client
	proc *proc
}

func (c apiClient) do(t *testing.T, method, path, key string, body string, header http.Header) (int, api.Answer, string) {
	code, a, b, err := c.try(method, path, key, body, header)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
	}
	return code, a, b
}

// try is do for a request that may fail: the instance may be gone.
func (c apiClient) try(method, path, key string, body string, header http.Header) (int, api.Answer, string, error) {
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, api.Answer{}, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a api.Answer
	json.Unmarshal(b, &a)
	return resp.StatusCode, a, string(b), nil
}

func (c apiClient) post(t *testing.T, payment string, header http.Header) (int, api.Answer, string) {
	return c.do(t, "POST", "/v1/payments", e2eAPIKey, payment, header)
}

func startAPIPart(t *testing.T, name string, args ...string) apiClient {
	t.Helper()
	p := start(t, name, args...)
	p.waitStderr(60*time.Second, `msg="decision API listening"`)
	return apiClient{base: apiListening.FindStringSubmatch(p.Stderr())[1], http: &http.Client{Timeout: 30 * time.Second}, proc: p}
}

// fraudpipe run answers the decision API: an account's payments get the decisions its rules imply, a retry gets
// the first answer without a second scoring, bad input and missing keys are refused with nothing produced, and
// every decision is on the decisions topic too.
func TestRunAnswersTheDecisionAPI(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	dir := t.TempDir()
	brokers := freeAddr(t)
	r := start(t, "run", "run", "--data-dir", filepath.Join(dir, "data"), "--broker-listen", brokers,
		"--rules", writeDecisionRules(t, dir), "--metrics-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	r.waitStderr(60*time.Second, `msg="decision API listening"`)
	c := apiClient{base: apiListening.FindStringSubmatch(r.Stderr())[1], http: &http.Client{Timeout: 30 * time.Second}}
	metrics := r.metricsAddr()
	// Without FRAUDPIPE_API_KEYS, run makes a developer key, readable by its owner only and never logged.
	keyFile := filepath.Join(dir, "data", "api.key")
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("api.key mode %v", fi.Mode())
	}
	devKey := strings.TrimSpace(string(key))
	if strings.Contains(r.Stderr()+r.Stdout(), devKey) {
		t.Fatal("the API key is in the log")
	}
	post := func(payment string) (int, api.Answer, string) {
		return c.do(t, "POST", "/v1/payments", devKey, payment, nil)
	}

	script := []struct {
		id      string
		amount  int64
		country string
		want    topics.Outcome
		rules   string
	}{
		{"p1", 10000, "DE", topics.OutcomeApprove, ""},
		{"p2", 600000, "DE", topics.OutcomeReview, "big-ticket"},
		{"p3", 10000, "FR", topics.OutcomeApprove, ""},
		{"p4", 10000, "US", topics.OutcomeBlock, "globetrotter"},
		{"p5", 6000000, "US", topics.OutcomeBlock, "big-ticket,huge-ticket,globetrotter"},
	}
	for i, s := range script {
		ts := fmt.Sprintf("2026-12-05T10:%02d:00Z", i)
		code, a, body := post(pay(s.id, "acct_api", s.amount, "EUR", ts, s.country))
		var names []string
		for _, f := range a.Rules {
			names = append(names, f.Name)
		}
		if code != 200 || a.Fallback || a.Decision.Decision != s.want || strings.Join(names, ",") != s.rules || a.RulesetVersion < 1 {
			t.Fatalf("%s: %d %s\nwant %s by %q", s.id, code, body, s.want, s.rules)
		}
	}
	// A retry, even with another amount: the first answer, not scored again.
	code, again, body := post(pay("p2", "acct_api", 100, "EUR", "2026-12-05T10:01:00Z", "DE"))
	if code != 200 || again.Decision.Decision != topics.OutcomeReview || again.Fallback {
		t.Fatalf("retry of p2: %d %s", code, body)
	}
	if code, a, body := c.do(t, "GET", "/v1/payments/p4/decision?account_id=acct_api", devKey, "", nil); code != 200 || a.Decision.Decision != topics.OutcomeBlock {
		t.Fatalf("GET p4: %d %s", code, body)
	}
	// Refused: no key, a wrong key, an invalid payment (the field named).
	if code, _, body := c.do(t, "POST", "/v1/payments", "", pay("p9", "acct_api", 100, "EUR", "2026-12-05T10:09:00Z", "DE"), nil); code != 401 {
		t.Fatalf("without a key: %d %s", code, body)
	}
	if code, _, body := c.do(t, "POST", "/v1/payments", strings.Repeat("k", 40), pay("p9", "acct_api", 100, "EUR", "2026-12-05T10:09:00Z", "DE"), nil); code != 401 {
		t.Fatalf("with a wrong key: %d %s", code, body)
	}
	code, _, body = post(`{"id":"p9","account_id":"acct_api","amount":100,"currency":"EURO","timestamp":"2026-12-05T10:09:00Z"}`)
	if code != 400 || !strings.Contains(body, `"field":"currency"`) {
		t.Fatalf("invalid currency: %d %s", code, body)
	}
	waitScored(t, metrics, len(script), time.Minute)
	payments := 0
	for _, rec := range kcatConsume(t, brokers, topics.Payments) {
		if _, control := rec.Headers[topics.HeaderControl]; !control {
			payments++
		}
	}
	if payments != len(script) {
		t.Fatalf("%d payments on the topic, want the %d valid first requests", payments, len(script))
	}
	decisions := kcatConsume(t, brokers, topics.Decisions)
	outcomes := map[string]string{}
	for _, rec := range decisions {
		var d topics.Decision
		if err := json.Unmarshal([]byte(rec.Value), &d); err != nil || rec.Key != "acct_api" {
			t.Fatalf("decision record %+v: %v", rec, err)
		}
		outcomes[d.PaymentID] += string(d.Decision) + " "
	}
	for _, s := range script {
		if outcomes[s.id] != string(s.want)+" " {
			t.Errorf("decisions topic for %s: %q, want one %s", s.id, outcomes[s.id], s.want)
		}
	}
}

// Two API instances and two detectors share a broker and a Redis: many concurrent clients, each request through
// either instance, all answered with the decisions the rules imply; a detector stalled past the deadline gives
// the fallback and then, on GET and on a retry, the real decision; a detector killed with kill -9 under load
// loses no request.
func TestDecisionAPIAcrossInstancesAndDetectors(t *testing.T) {
	dir := t.TempDir()
	c := startBroker(t, filepath.Join(dir, "broker"))
	redis := testenv.StartRedis(t)
	rulesPath := writeDecisionRules(t, dir)
	t.Setenv("FRAUDPIPE_API_KEYS", "e2e:"+e2eAPIKey)
	var dets []*proc
	for i := range 2 {
		d := start(t, fmt.Sprint("detector-", i), "detector", "--brokers", c.brokers, "--rules", rulesPath,
			"--state-dir", filepath.Join(dir, fmt.Sprint("state-", i)), "--metrics-addr", "127.0.0.1:0")
		d.waitStderr(60*time.Second, "detector started")
		dets = append(dets, d)
	}
	// Both own partitions before the first request: a detector joining mid-load moves partitions, and on Apache
	// Kafka the take-over outlasts a deadline of seconds.
	addrs := []string{dets[0].metricsAddr(), dets[1].metricsAddr()}
	waitFor(t, 60*time.Second, "the two detectors to share the partitions", func() bool {
		return hasPartitions(addrs[0]) && hasPartitions(addrs[1])
	})
	var apis []apiClient
	for i := range 2 {
		apis = append(apis, startAPIPart(t, fmt.Sprint("api-", i), "api", "--brokers", c.brokers, "--redis", redis.URL(),
			"--api-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--api-fallback", "block", "--api-max-deadline", "1m"))
	}
	// The amount alone decides (one country per account): the answer is known whatever the order.
	amounts := []int64{10000, 600000, 6000000}
	wants := []topics.Outcome{topics.OutcomeApprove, topics.OutcomeReview, topics.OutcomeBlock}
	send := func(round string, clients, each int, deadline string, check func(id string, want topics.Outcome, code int, a api.Answer, body string)) {
		var wg sync.WaitGroup
		for cl := range clients {
			wg.Go(func() {
				for i := range each {
					n := cl*each + i
					id, account := fmt.Sprintf("%s-%d", round, n), fmt.Sprintf("acct_%d", n%17)
					h := http.Header{}
					if deadline != "" {
						h.Set(api.HeaderDeadline, deadline)
					}
					code, a, body := apis[n%2].post(t, pay(id, account, amounts[n%3], "EUR", "2026-12-05T10:00:00Z", "DE"), h)
					check(id, wants[n%3], code, a, body)
				}
			})
		}
		wg.Wait()
	}
	// The groups settle while the first requests wait: a generous deadline.
	send("warm", 2, 5, "30000", func(id string, want topics.Outcome, code int, a api.Answer, body string) {
		if code != 200 || a.Fallback || a.Decision.Decision != want {
			t.Errorf("%s: %d %s, want %s", id, code, body, want)
		}
	})
	send("load", 8, 40, "5000", func(id string, want topics.Outcome, code int, a api.Answer, body string) {
		if code != 200 || a.Fallback || a.Decision.Decision != want || a.PaymentID != id {
			t.Errorf("%s: %d %s, want %s", id, code, body, want)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Both detectors stalled (SIGSTOP): the deadline passes, the fallback answers; the real decision follows.
	for _, d := range dets {
		d.cmd.Process.Signal(syscall.SIGSTOP)
	}
	code, a, body := apis[0].post(t, pay("stalled", "acct_1", 600000, "EUR", "2026-12-05T10:00:00Z", "DE"), http.Header{api.HeaderDeadline: {"300"}})
	if code != 200 || !a.Fallback || a.Decision.Decision != topics.OutcomeBlock || a.ElapsedMs < 300 || a.ElapsedMs > 3000 {
		t.Fatalf("stalled detectors: %d %s, want the fallback (block) after 300 ms", code, body)
	}
	if code, _, body := apis[1].do(t, "GET", "/v1/payments/stalled/decision?account_id=acct_1", e2eAPIKey, "", nil); code != 202 {
		t.Fatalf("GET while stalled: %d %s, want 202", code, body)
	}
	for _, d := range dets {
		d.cmd.Process.Signal(syscall.SIGCONT)
	}
	waitFor(t, time.Minute, "the stalled payment's real decision", func() bool {
		code, a, _ := apis[1].do(t, "GET", "/v1/payments/stalled/decision?account_id=acct_1", e2eAPIKey, "", nil)
		return code == 200 && a.Decision.Decision == topics.OutcomeReview && !a.Fallback
	})
	if code, a, body := apis[1].post(t, pay("stalled", "acct_1", 600000, "EUR", "2026-12-05T10:00:00Z", "DE"), nil); code != 200 || a.Fallback || a.Decision.Decision != topics.OutcomeReview {
		t.Fatalf("retry after the stall: %d %s", code, body)
	}

	// kill -9 of a detector under load: every request is answered within its deadline (decision or fallback), and
	// each fallback's payment, submitted once, is decided after the take-over (seen by GET, not by posting again,
	// which would hide a payment lost at the kill).
	var mu sync.Mutex
	var fellBack []string
	var killed sync.Once
	send("kill", 4, 40, "2000", func(id string, want topics.Outcome, code int, a api.Answer, body string) {
		killed.Do(func() { dets[1].kill9() })
		switch {
		case code != 200 || a.ElapsedMs > 3000:
			t.Errorf("%s: %d %s", id, code, body)
		case a.Fallback:
			mu.Lock()
			fellBack = append(fellBack, id)
			mu.Unlock()
		case a.Decision.Decision != want:
			t.Errorf("%s: %s, want %s", id, body, want)
		}
	})
	t.Logf("%d of 160 requests got the fallback while the group rebalanced", len(fellBack))
	for _, id := range fellBack {
		var n int
		fmt.Sscanf(id, "kill-%d", &n)
		waitFor(t, 2*time.Minute, id+"'s decision after the take-over", func() bool {
			code, a, _ := apis[n%2].do(t, "GET", fmt.Sprintf("/v1/payments/%s/decision?account_id=acct_%d", id, n%17), e2eAPIKey, "", nil)
			return code == 200 && !a.Fallback && a.Decision.Decision == wants[n%3]
		})
	}

	// kill -9 of an API instance under load. Its callers' connections drop and they post the same payment again
	// through the other instance until they get a decision: the real one. The other instance's requests are
	// answered within their deadline (the fallback while the relay group takes the dead relay's partitions
	// over), and each fallback's payment is decided.
	var dropped []int
	fellBack = fellBack[:0]
	var apiKilled sync.Once
	var wg sync.WaitGroup
	for cl := range 4 {
		wg.Go(func() {
			for i := range 40 {
				n := cl*40 + i
				if i == 5 {
					apiKilled.Do(func() { apis[1].proc.kill9() })
				}
				id := fmt.Sprintf("apikill-%d", n)
				code, a, body, err := apis[n%2].try("POST", "/v1/payments", e2eAPIKey,
					pay(id, fmt.Sprintf("acct_%d", n%17), amounts[n%3], "EUR", "2026-12-05T10:00:00Z", "DE"), http.Header{api.HeaderDeadline: {"2000"}})
				mu.Lock()
				switch {
				case err != nil && n%2 == 1:
					dropped = append(dropped, n)
				case err != nil || code != 200 || a.ElapsedMs > 3000:
					t.Errorf("%s: %d %s %v", id, code, body, err)
				case a.Fallback:
					fellBack = append(fellBack, id)
				case a.Decision.Decision != wants[n%3]:
					t.Errorf("%s: %s, want %s", id, body, wants[n%3])
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("API instance killed: %d of 80 requests to it dropped, %d fallbacks on the other", len(dropped), len(fellBack))
	if len(dropped) == 0 {
		t.Fatal("no request to the killed instance failed: it was not killed under load")
	}
	for _, n := range dropped {
		id, account := fmt.Sprintf("apikill-%d", n), fmt.Sprintf("acct_%d", n%17)
		waitFor(t, 2*time.Minute, id+"'s decision through the other instance", func() bool {
			code, a, _ := apis[0].post(t, pay(id, account, amounts[n%3], "EUR", "2026-12-05T10:00:00Z", "DE"), http.Header{api.HeaderDeadline: {"2000"}})
			return code == 200 && !a.Fallback && a.Decision.Decision == wants[n%3]
		})
	}
	for _, id := range fellBack {
		var n int
		fmt.Sscanf(id, "apikill-%d", &n)
		waitFor(t, 2*time.Minute, id+"'s decision after the relay's take-over", func() bool {
			code, a, _ := apis[0].do(t, "GET", fmt.Sprintf("/v1/payments/%s/decision?account_id=acct_%d", id, n%17), e2eAPIKey, "", nil)
			return code == 200 && !a.Fallback && a.Decision.Decision == wants[n%3]
		})
	}

	// No answer contradicts another: each payment's decisions on the topic agree. The payments of the API
	// instance's kill, posted again by their callers, were scored once: the other decisions are replays. (A
	// detector killed between its state's write and its commit may score a payment again, from the same state.)
	seen := map[string]string{}
	scored := map[string]int{}
	for _, rec := range kcatConsume(t, c.brokers, topics.Decisions) {
		var d topics.Decision
		if err := json.Unmarshal([]byte(rec.Value), &d); err != nil {
			t.Fatal(err)
		}
		k := api.Key(d.AccountID, d.PaymentID)
		if prev, ok := seen[k]; ok && prev != string(d.Decision) {
			t.Errorf("%s decided %s and %s", k, prev, d.Decision)
		}
		seen[k] = string(d.Decision)
		if !d.Replayed && strings.HasPrefix(d.PaymentID, "apikill-") {
			scored[k]++
		}
	}
	for k, n := range scored {
		if n > 1 {
			t.Errorf("%s scored %d times", k, n)
		}
	}
}
