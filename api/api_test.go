package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/api"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

const testKey = "0123456789abcdef0123456789abcdef"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// decider stands in for the detector: it reads payments and writes each one's decision, with the reply address,
// to decisions. Its outcome is a function of the amount; it counts how often it saw each payment.
type decider struct {
	mu      sync.Mutex
	seen    map[string]int
	stall   chan struct{} // while open and non-nil, payments wait
	arrived int           // payments read, stalled or not
	client  *kgo.Client
}

func outcomeFor(amount int64) topics.Outcome {
	switch {
	case amount >= 100_000:
		return topics.OutcomeBlock
	case amount >= 10_000:
		return topics.OutcomeReview
	}
	return topics.OutcomeApprove
}

func (d *decider) run(ctx context.Context, t *testing.T) {
	for {
		fs := d.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			d.mu.Lock()
			stall := d.stall
			d.arrived++
			d.mu.Unlock()
			if stall != nil {
				select {
				case <-stall:
				case <-ctx.Done():
					return
				}
			}
			p, err := rules.ParsePayment(r.Value)
			if err != nil {
				t.Errorf("the API produced an invalid payment: %v", err)
				return
			}
			d.mu.Lock()
			d.seen[api.Key(p.AccountID, p.ID)]++
			replayed := d.seen[api.Key(p.AccountID, p.ID)] > 1
			d.mu.Unlock()
			b, _ := json.Marshal(topics.Decision{PaymentID: p.ID, AccountID: p.AccountID, Decision: outcomeFor(p.Amount),
				Score: 10, Rules: []topics.Fired{}, RulesetVersion: 1, DecidedAt: time.Now().UTC(), Replayed: replayed})
			d.client.Produce(ctx, &kgo.Record{Topic: topics.Decisions, Key: r.Key, Value: b, Headers: r.Headers}, nil)
		})
	}
}

func (d *decider) count(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[key]
}

func (d *decider) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.seen {
		n += c
	}
	return n
}

type env struct {
	kafka   kafka.Config
	redis   *testenv.Redis
	rdb     *redis.Client
	decider *decider
	urls    []string
	stops   []func() // stop instance i
	spec    *openapi3.T
	router  routers.Router
}

// start runs a broker, a redis-server, the decider and n API instances (relay and server each), as fraudpipe api does.
func start(t *testing.T, n int, tweak func(*api.Config)) *env {
	t.Helper()
	e := &env{kafka: testenv.Kafka(t, 3, topics.Payments, topics.Decisions)}
	e.redis = testenv.StartRedis(t)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.Addr, MaxRetries: -1})
	t.Cleanup(func() { e.rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	dc, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.Brokers...), kgo.ConsumeTopics(topics.Payments), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Close)
	e.decider = &decider{seen: map[string]int{}, client: dc}
	wg.Go(func() { e.decider.run(ctx, t) })

	keys, err := api.ParseKeys("test:" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		prod, err := e.kafka.NewProducer(fmt.Sprint("api-test-", i), quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(prod.Close)
		store := api.NewStore(ctx, e.rdb, time.Hour, quiet)
		cfg := api.Config{
			Instance: api.NewInstanceID(), Store: store, Redis: e.rdb, Keys: keys, Deadline: 5 * time.Second,
			Fallback: topics.OutcomeReview, Log: quiet,
			Produce: func(ctx context.Context, key string, value []byte, replyTo string, done func(error)) {
				prod.Produce(ctx, &kgo.Record{Topic: topics.Payments, Key: []byte(key), Value: value,
					Headers: []kgo.RecordHeader{{Key: topics.HeaderReplyTo, Value: []byte(replyTo)}}}, func(_ *kgo.Record, err error) { done(err) })
			},
		}
		if tweak != nil {
			tweak(&cfg)
		}
		srv, err := api.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		relay, err := api.NewRelay(e.kafka, store, srv, quiet)
		if err != nil {
			t.Fatal(err)
		}
		subscribed := make(chan struct{})
		wg.Go(func() { relay.Run(ctx) })
		wg.Go(func() { srv.Run(ctx, subscribed) })
		for _, ch := range []<-chan struct{}{subscribed, relay.Ready()} {
			select {
			case <-ch:
			case <-time.After(30 * time.Second):
				t.Fatal("API instance not ready within 30s")
			}
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// The server stops with the test, or earlier by stop, as fraudpipe api does at a signal: the server first,
		// then (its payments written) the store.
		sctx, scancel := context.WithCancel(ctx)
		served := make(chan struct{})
		wg.Go(func() {
			defer close(served)
			if err := srv.Serve(sctx, ln); err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		e.stops = append(e.stops, func() {
			scancel()
			<-served
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			store.Close(cctx)
		})
		e.urls = append(e.urls, "http://"+ln.Addr().String())
	}
	e.spec, err = openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.spec.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	e.spec.Servers = nil // match requests to any host
	if e.router, err = legacy.NewRouter(e.spec); err != nil {
		t.Fatal(err)
	}
	return e
}

// send sends a request to instance i and reads its answer.
func (e *env) send(t *testing.T, i int, method, path, key string, body []byte, header http.Header) (*http.Request, *http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.urls[i]+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return req, resp, got
}

// do sends a request to instance i and checks request and answer against the OpenAPI document.
func (e *env) do(t *testing.T, i int, method, path, key string, body []byte, header http.Header) (int, []byte) {
	t.Helper()
	req, resp, got := e.send(t, i, method, path, key, body, header)
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the OpenAPI document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(got)),
	})
	if err != nil {
		t.Fatalf("%s %s answered %d %s, which the OpenAPI document does not allow: %v", method, path, resp.StatusCode, got, err)
	}
	return resp.StatusCode, got
}

func payment(account, id string, amount int64) []byte {
	b, _ := json.Marshal(rules.Payment{ID: id, AccountID: account, Amount: amount, Currency: "EUR", Timestamp: time.Now().UTC()})
	return b
}

func answer(t *testing.T, b []byte) api.Answer {
	t.Helper()
	var a api.Answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return a
}

func TestConcurrentRequestsAcrossTwoInstancesGetTheirOwnDecisions(t *testing.T) {
	var ms []*api.Metrics
	e := start(t, 2, func(c *api.Config) {
		c.Metrics = api.NewMetrics(nil)
		ms = append(ms, c.Metrics)
	})
	// The relays read every decision: those of payments not posted to the API (no reply address) and unreadable
	// ones are passed over.
	for _, r := range []*kgo.Record{
		{Topic: topics.Decisions, Key: []byte("acct_1"), Value: payment("acct_1", "not-through-the-api", 1)},
		{Topic: topics.Decisions, Key: []byte("acct_1"), Value: []byte(`{"payment_id":"x`), Headers: []kgo.RecordHeader{{Key: topics.HeaderReplyTo, Value: []byte("api-gone")}}},
		// Truncated after readable ids: never stored as the payment's first decision.
		{Topic: topics.Decisions, Key: []byte("acct_1"), Value: []byte(`{"payment_id":"p-trunc","account_id":"acct_1","decision":"block"`), Headers: []kgo.RecordHeader{{Key: topics.HeaderReplyTo, Value: []byte("api-gone")}}},
		// Behind them on their partition: once it is stored, they were read.
		{Topic: topics.Decisions, Key: []byte("acct_1"), Value: topics.AppendDecision(nil, &topics.Decision{PaymentID: "sentinel", AccountID: "acct_1", Decision: topics.OutcomeApprove, Rules: []topics.Fired{}}), Headers: []kgo.RecordHeader{{Key: topics.HeaderReplyTo, Value: []byte("api-gone")}}},
	} {
		if err := e.decider.client.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the relays past the unreadable decisions", func() bool {
		return e.rdb.Exists(context.Background(), "fraudpipe:api:d:"+api.Key("acct_1", "sentinel")).Val() == 1
	})
	if code, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", "p-trunc", 500), nil); code != 200 || answer(t, body).Fallback || answer(t, body).Decision.Decision != topics.OutcomeApprove {
		t.Fatalf("a payment whose unreadable decision passed by: %d %s, want its real decision (approve)", code, body)
	}
	amounts := []int64{500, 20_000, 150_000}
	var wg sync.WaitGroup
	for c := range 8 { // clients
		wg.Go(func() {
			for i := range 25 {
				// Some ids need escapes in JSON: the relay reads those by decoding.
				account, id := fmt.Sprintf("acct_%d", (c*25+i)%13), fmt.Sprintf(`p-%d-%d%s`, c, i, []string{"", `"<q>"`}[i%2])
				amount := amounts[(c+i)%3]
				code, body := e.do(t, (c+i)%2, "POST", "/v1/payments", testKey, payment(account, id, amount), nil)
				a := answer(t, body)
				// Well within the deadline (5 s): the decision came by its relay, not from the store once the wait ended.
				if code != 200 || a.Fallback || a.PaymentID != id || a.AccountID != account || a.Decision.Decision != outcomeFor(amount) || a.ElapsedMs > 2500 {
					t.Errorf("%s/%s (%d): %d %s", account, id, amount, code, body)
				}
			}
		})
	}
	wg.Wait()
	if n := e.decider.total(); n != 201 {
		t.Fatalf("the detector saw %d payments, want each of the 201 once", n)
	}
	// Each instance's relay owns partitions: it handed some decisions to its own requests and published others.
	// (A relay counts once Redis has the batch, which the answers may come before.)
	count := func(i int, path string) float64 { return testutil.ToFloat64(ms[i].Relayed.WithLabelValues(path)) }
	testenv.WaitFor(t, 5*time.Second, "every decision relayed", func() bool {
		return count(0, "local")+count(0, "published")+count(1, "local")+count(1, "published") >= 201
	})
	for i := range ms {
		if count(i, "local") == 0 || count(i, "published") == 0 {
			t.Errorf("instance %d relayed %v locally and published %v", i, count(i, "local"), count(i, "published"))
		}
	}
}

func TestTheSamePaymentAgainGetsItsFirstDecisionWithoutScoring(t *testing.T) {
	e := start(t, 2, nil)
	p := payment("acct_1", "p1", 20_000)
	_, first := e.do(t, 0, "POST", "/v1/payments", testKey, p, nil)
	// A retry through the other instance, and one with the amount changed: the first decision stands.
	_, again := e.do(t, 1, "POST", "/v1/payments", testKey, p, nil)
	_, changed := e.do(t, 1, "POST", "/v1/payments", testKey, payment("acct_1", "p1", 500), nil)
	a, b, c := answer(t, first), answer(t, again), answer(t, changed)
	if a.Decision.Decision != topics.OutcomeReview || b.Decision.Decision != a.Decision.Decision || c.Decision.Decision != a.Decision.Decision || !b.DecidedAt.Equal(a.DecidedAt) {
		t.Fatalf("first %s\nagain %s\nchanged %s", first, again, changed)
	}
	if n := e.decider.count(api.Key("acct_1", "p1")); n != 1 {
		t.Fatalf("scored %d times, want once", n)
	}
	// The same payment id in another account is another payment.
	if _, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_2", "p1", 500), nil); answer(t, body).Decision.Decision != topics.OutcomeApprove {
		t.Fatalf("acct_2/p1: %s", body)
	}
}

func TestAMissedDeadlineGivesTheFallbackAndLaterTheDecision(t *testing.T) {
	e := start(t, 1, func(c *api.Config) { c.Fallback = topics.OutcomeBlock })
	stall := make(chan struct{})
	e.decider.mu.Lock()
	e.decider.stall = stall
	e.decider.mu.Unlock()
	code, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", "p1", 500), http.Header{api.HeaderDeadline: {"100"}})
	a := answer(t, body)
	if code != 200 || !a.Fallback || a.Decision.Decision != topics.OutcomeBlock || a.PaymentID != "p1" || a.ElapsedMs < 100 || a.ElapsedMs > 2000 {
		t.Fatalf("want the fallback (block) after about 100 ms, got %d %s", code, body)
	}
	if code, body := e.do(t, 0, "GET", "/v1/payments/p1/decision?account_id=acct_1", testKey, nil, nil); code != http.StatusAccepted {
		t.Fatalf("while the detector is stalled: %d %s, want 202 pending", code, body)
	}
	// The payment is on Kafka: its claim outlives the request by far (GET keeps saying pending through a
	// detector's take-over, and a retry waits instead of producing it again).
	testenv.WaitFor(t, 5*time.Second, "the claim extended", func() bool {
		return e.rdb.PTTL(context.Background(), "fraudpipe:api:p:"+api.Key("acct_1", "p1")).Val() > 30*time.Second
	})
	close(stall)
	testenv.WaitFor(t, 10*time.Second, "the real decision", func() bool {
		code, body := e.do(t, 0, "GET", "/v1/payments/p1/decision?account_id=acct_1", testKey, nil, nil)
		return code == 200 && answer(t, body).Decision.Decision == topics.OutcomeApprove && !answer(t, body).Fallback
	})
	// Posting it again now gets the real decision, still scored once.
	if _, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", "p1", 500), nil); answer(t, body).Decision.Decision != topics.OutcomeApprove || answer(t, body).Fallback {
		t.Fatalf("retry: %s", body)
	}
	if n := e.decider.count(api.Key("acct_1", "p1")); n != 1 {
		t.Fatalf("scored %d times", n)
	}
}

func TestBadRequestsAreRefusedAndNothingIsProduced(t *testing.T) {
	e := start(t, 1, func(c *api.Config) { c.RatePerKey, c.Burst = 0.01, 6 })
	cases := []struct {
		name, key, body string
		header          http.Header
		code            int
		field, reason   string
	}{
		{"no key", "", string(payment("a", "p", 1)), nil, 401, "", ""},
		{"unknown key", strings.Repeat("x", 32), string(payment("a", "p", 1)), nil, 401, "", ""},
		{"negative amount", testKey, `{"id":"p","account_id":"a","amount":-5,"currency":"EUR","timestamp":"2026-12-05T10:00:00Z"}`, nil, 400, "amount", rules.ReasonBadAmount},
		{"no account", testKey, `{"id":"p","amount":5,"currency":"EUR","timestamp":"2026-12-05T10:00:00Z"}`, nil, 400, "account_id", rules.ReasonMissingField},
		{"not JSON", testKey, `{"id":`, nil, 400, "", ""},
		{"too large", testKey, `{"id":"` + strings.Repeat("x", rules.MaxPaymentBytes) + `"}`, nil, 413, "", ""},
		{"bad deadline", testKey, string(payment("a", "p", 1)), http.Header{api.HeaderDeadline: {"soon"}}, 400, "", ""},
	}
	for _, c := range cases {
		code, body := e.do(t, 0, "POST", "/v1/payments", c.key, []byte(c.body), c.header)
		var got struct{ Error, Field, Reason, Detail string }
		json.Unmarshal(body, &got)
		if code != c.code || got.Field != c.field || (c.reason != "" && got.Reason != c.reason) {
			t.Errorf("%s: %d %s, want %d field %q", c.name, code, body, c.code, c.field)
		}
		if bytes.Contains(body, []byte(testKey)) || bytes.Contains(body, []byte("redis")) {
			t.Errorf("%s: the answer leaks: %s", c.name, body)
		}
	}
	e.nothingProducedBut(t, "0")
	// The rate limit: the burst of 6 is spent above, so 429.
	limited := false
	for range 5 {
		if code, _ := e.do(t, 0, "GET", "/v1/payments/x/decision?account_id=a", testKey, nil, nil); code == http.StatusTooManyRequests {
			limited = true
		}
	}
	if !limited {
		t.Error("no 429 beyond the key's burst")
	}
}

// nothingProducedBut posts a valid sentinel payment through instance i and, once it is decided, checks that the
// scorer saw that one payment only: a refused request that wrote anyway, however late, shows.
func (e *env) nothingProducedBut(t *testing.T, i string) {
	t.Helper()
	idx := 0
	if i == "1" {
		idx = 1
	}
	req, _ := http.NewRequest("POST", e.urls[idx]+"/v1/payments", bytes.NewReader(payment("acct_sentinel", "sentinel", 500)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testenv.WaitFor(t, 10*time.Second, "the sentinel payment scored", func() bool { return e.decider.count(api.Key("acct_sentinel", "sentinel")) == 1 })
	if n := e.decider.total(); n != 1 {
		t.Fatalf("%d payments produced, want the sentinel only", n)
	}
}

func TestRedisAwayIsA503ThatSaysNothingOfIt(t *testing.T) {
	e := start(t, 1, nil)
	e.redis.Kill()
	code, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", "p1", 500), nil)
	if code != http.StatusServiceUnavailable || bytes.Contains(body, []byte("redis")) || bytes.Contains(body, []byte("127.0.0.1")) {
		t.Fatalf("%d %s, want a bare 503", code, body)
	}
	if n := e.decider.total(); n != 0 {
		t.Fatalf("%d payments produced without a claim", n)
	}
	// (The retry below must be the one write: it is scored once.)
	// Back: the same payment is taken.
	e.redis.Start()
	testenv.WaitFor(t, 10*time.Second, "the payment decided once Redis is back", func() bool {
		code, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", "p1", 500), nil)
		return code == 200 && answer(t, body).Decision.Decision == topics.OutcomeApprove
	})
}

func TestARetryRacingItsOriginalWaitsForTheSameDecision(t *testing.T) {
	e := start(t, 2, nil)
	stall := make(chan struct{})
	e.decider.mu.Lock()
	e.decider.stall = stall
	e.decider.mu.Unlock()
	p := payment("acct_1", "p1", 20_000)
	answers := make([]api.Answer, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			_, body := e.do(t, i, "POST", "/v1/payments", testKey, p, http.Header{api.HeaderDeadline: {"10000"}})
			answers[i] = answer(t, body)
		})
	}
	// Both are waiting: one produced the payment, the other found it claimed.
	testenv.WaitFor(t, 10*time.Second, "the payment claimed", func() bool {
		return e.rdb.Exists(context.Background(), "fraudpipe:api:p:"+api.Key("acct_1", "p1")).Val() == 1
	})
	close(stall)
	wg.Wait()
	for i, a := range answers {
		if a.Fallback || a.Decision.Decision != topics.OutcomeReview || !a.DecidedAt.Equal(answers[0].DecidedAt) {
			t.Fatalf("answer %d: %+v, first %+v", i, a, answers[0])
		}
	}
	if n := e.decider.count(api.Key("acct_1", "p1")); n != 1 {
		t.Fatalf("scored %d times", n)
	}
}

func TestRoutesMethodsAndLimits(t *testing.T) {
	e := start(t, 1, nil)
	raw := func(method, path string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		_, resp, b := e.send(t, 0, method, path, testKey, nil, header)
		if resp.Header.Get("Server") != "" {
			t.Errorf("%s %s: a Server header tells what serves: %q", method, path, resp.Header.Get("Server"))
		}
		return resp, b
	}
	if resp, b := raw("GET", "/v1/payments", nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !bytes.Contains(b, []byte(`"method_not_allowed"`)) {
		t.Errorf("GET /v1/payments: %d %s (Allow %q), want 405 allowing POST", resp.StatusCode, b, resp.Header.Get("Allow"))
	}
	for _, path := range []string{"/v1/elsewhere", "/v1/payments/a/b/decision", "/v1/payments//decision", "/v1/payments/decision", "/v1/payments/"} {
		if resp, b := raw("GET", path, nil); resp.StatusCode != http.StatusNotFound || !bytes.Contains(b, []byte(`"not_found"`)) {
			t.Errorf("GET %s: %d %s, want a JSON 404", path, resp.StatusCode, b)
		}
	}
	if resp, b := raw("HEAD", "/v1/payments/p1/decision?account_id=a", nil); resp.StatusCode != http.StatusNotFound || len(b) != 0 {
		t.Errorf("HEAD of a decision: %d %q, want GET's status without a body", resp.StatusCode, b)
	}
	if resp, b := raw("GET", "/v1/payments/p1/decision?account_id=a", http.Header{"X-Pad": {strings.Repeat("x", 9<<10)}}); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("9 KiB of headers: %d %s, want 431", resp.StatusCode, b)
	}
	// An id holding "/" and a space is one path segment once escaped.
	id := "ord/7 b"
	if code, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", id, 20_000), nil); code != 200 || answer(t, body).PaymentID != id {
		t.Fatalf("POST %q: %d %s", id, code, body)
	}
	// (kin-openapi's router does not match an escaped "/": not validated against the document here.)
	resp, body := raw("GET", "/v1/payments/"+url.PathEscape(id)+"/decision?account_id=acct_1", nil)
	if a, code := answer(t, body), resp.StatusCode; code != 200 || a.PaymentID != id || a.Decision.Decision != topics.OutcomeReview || a.Fallback {
		t.Fatalf("GET %q: %d %s", id, code, body)
	}
}

func TestAStopExtendsTheClaimsOfPaymentsStillWaiting(t *testing.T) {
	e := start(t, 1, nil)
	stall := make(chan struct{})
	defer close(stall)
	e.decider.mu.Lock()
	e.decider.stall = stall
	e.decider.mu.Unlock()
	answered := make(chan []byte, 1)
	go func() {
		_, body := e.do(t, 0, "POST", "/v1/payments", testKey, payment("acct_1", "p1", 500), http.Header{api.HeaderDeadline: {"10000"}})
		answered <- body
	}()
	testenv.WaitFor(t, 10*time.Second, "the payment on Kafka", func() bool {
		e.decider.mu.Lock()
		defer e.decider.mu.Unlock()
		return e.decider.arrived == 1
	})
	// A stop: the waiting request is answered at once (the fallback: its payment is submitted), and its claim
	// outlives the process, so that a retry through another instance waits for the decision.
	e.stops[0]()
	select {
	case body := <-answered:
		if a := answer(t, body); !a.Fallback || a.ElapsedMs > 5000 {
			t.Fatalf("answer at the stop: %s, want the fallback at once", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request not answered at the stop")
	}
	if ttl := e.rdb.PTTL(context.Background(), "fraudpipe:api:p:"+api.Key("acct_1", "p1")).Val(); ttl < 30*time.Second {
		t.Fatalf("the claim lasts %v after the stop, want about a minute", ttl)
	}
}

func TestFallbackNames(t *testing.T) {
	for in, want := range map[string]topics.Outcome{"approve": topics.OutcomeApprove, "review": topics.OutcomeReview,
		"block": topics.OutcomeBlock, "decline": topics.OutcomeBlock, " Decline ": topics.OutcomeBlock} {
		if got, err := api.ParseFallback(in); err != nil || got != want {
			t.Errorf("ParseFallback(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "deny", "allow"} {
		if _, err := api.ParseFallback(in); err == nil {
			t.Errorf("ParseFallback(%q): no error", in)
		}
	}
}
