package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/logging"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

type collectedDLQ struct {
	mu sync.Mutex
	d  []topics.DeadDelivery
}

func (c *collectedDLQ) DeadLetter(_ context.Context, d topics.DeadDelivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d = append(c.d, d)
	return nil
}

func (c *collectedDLQ) all() []topics.DeadDelivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]topics.DeadDelivery(nil), c.d...)
}

// env is a dispatcher wired to a real redis-server, a real SMTP server, and HTTP servers playing the SMS
// provider and the push service.
type env struct {
	redis   *testenv.Redis
	rdb     *redis.Client
	smtp    *testenv.SMTPServer
	sms     *testenv.HTTPProvider
	push    *testenv.HTTPProvider
	browser *testenv.PushClient
	store   *Store
	d       *Dispatcher
	dlq     *collectedDLQ
	log     *testenv.Buffer
	metrics *Metrics
	mu      sync.Mutex
	clock   time.Time // zero: real time
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.clock.IsZero() {
		return time.Now()
	}
	return e.clock
}

func (e *env) setClock(t time.Time) { e.mu.Lock(); e.clock = t; e.mu.Unlock() }

func newEnv(t *testing.T, extraYAML string) *env {
	t.Helper()
	e := &env{redis: testenv.StartRedis(t), smtp: testenv.StartSMTP(t), sms: testenv.StartHTTPProvider(t),
		push: testenv.StartHTTPProvider(t), dlq: &collectedDLQ{}, log: &testenv.Buffer{}, metrics: NewMetrics(nil)}
	var err error
	if e.browser, err = testenv.NewPushClient(); err != nil {
		t.Fatal(err)
	}
	vapidPriv, vapidPub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvSMSToken, "sms-secret-token")
	t.Setenv(EnvVAPIDPrivateKey, vapidPriv)
	cfgPath := filepath.Join(t.TempDir(), "notifier.yaml")
	retry := "retry: { attempts: 3, initial: 10ms, max: 50ms, lease: 1s, breaker_timeout: 300ms }"
	if strings.Contains(extraYAML, "retry:") {
		retry = "" // the test sets its own
	}
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
%s
email: { host: %s, port: %d, from: "fraudpipe <alerts@bank.example>", tls: none }
sms: { base_url: %q, account_sid: AC0123, from: "+15005550006", timeout: 300ms }
push: { subscriber: "mailto:ops@bank.example", vapid_public_key: %q }
%s`, retry, e.smtp.Host, e.smtp.Port, e.sms.URL, vapidPub, extraYAML)), 0o644)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.Addr, MaxRetries: -1})
	t.Cleanup(func() { e.rdb.Close() })
	diag := slog.New(slog.NewTextHandler(e.log, nil))
	e.store = NewStore(e.rdb, diag, func(up bool) {
		if up {
			e.metrics.RedisUp.Set(1)
		} else {
			e.metrics.RedisUp.Set(0)
		}
	})
	tmpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	alertLog, _ := logging.New(e.log, "text", slog.LevelInfo)
	e.d = NewDispatcher(cfg, DispatcherDeps{
		Store: e.store, Templates: tmpl, DLQ: e.dlq, Metrics: e.metrics, Log: diag, AlertLog: alertLog, Now: e.now,
		Senders: map[string]Sender{ChannelEmail: NewEmailSender(cfg.Email), ChannelSMS: NewSMSSender(cfg.SMS), ChannelPush: NewPushSender(cfg.Push)},
	})
	return e
}

var offset int64

func (e *env) customer(t *testing.T, c topics.Customer) {
	t.Helper()
	b, _ := json.Marshal(c)
	offset++
	if err := e.store.replicate(context.Background(), c.AccountID, 0, offset, b); err != nil {
		t.Fatal(err)
	}
}

func (e *env) ana(t *testing.T, mutate func(*topics.Customer)) {
	c := topics.Customer{AccountID: "acct_ana", Name: "Ana", Email: "ana@example.com", Phone: "+4915112345678", Locale: "de-DE"}
	sub := topics.PushSubscription{Endpoint: e.push.URL + "/push/ana"}
	sub.Keys.P256dh, sub.Keys.Auth = e.browser.P256dh, e.browser.Auth
	c.Push = []topics.PushSubscription{sub}
	if mutate != nil {
		mutate(&c)
	}
	e.customer(t, c)
}

func alert(id string, action rules.Action) *topics.Alert {
	p := rules.Payment{ID: id, AccountID: "acct_ana", Amount: 600000, Currency: "EUR", MerchantID: "m_jewels",
		Country: "DE", CardID: "4111111111111111", Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	a := detector.NewAlert(p, rules.Decision{Score: 80, Action: action, Fired: []rules.Fired{
		{Name: "big-ticket", Score: 80, Reason: "amount 6,000.00 EUR > limit 5,000.00 EUR"}}}, &rules.Ruleset{Number: 1, Digest: "abc"}, time.Now())
	return &a
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, what, cond)
}

func TestDeliversOnEveryRoutedChannelExactlyOnce(t *testing.T) {
	e := newEnv(t, "")
	e.ana(t, nil)
	a := alert("pay_1", rules.ActionBlock)
	ctx := context.Background()
	if err := e.d.Handle(ctx, a); err != nil {
		t.Fatal(err)
	}
	// The same alert again: redelivered by Kafka, or re-emitted by a detector after a crash.
	if err := e.d.Handle(ctx, a); err != nil {
		t.Fatal(err)
	}

	mails := e.smtp.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d emails, want 1", len(mails))
	}
	m := mails[0]
	if m.To[0] != "ana@example.com" || m.Msg.Header.Get("Message-Id") != messageID(a.ID, "ana@example.com") ||
		m.Msg.Header.Get("Subject") != "We blocked a payment of 6,000.00 EUR" {
		t.Fatalf("email headers: to %v, %v", m.To, m.Msg.Header)
	}
	for _, part := range []string{"text/plain", "text/html"} {
		for _, want := range []string{"Hello Ana", "6,000.00 EUR", "m_jewels", "****1111", "amount 6,000.00 EUR ", "limit 5,000.00 EUR", a.ID} {
			if !strings.Contains(m.Text[part], want) {
				t.Errorf("email %s part lacks %q:\n%s", part, want, m.Text[part])
			}
		}
	}
	if strings.Contains(m.Body, "4111111111111111") {
		t.Error("the email shows the full card number")
	}

	sms := e.sms.Requests()
	if len(sms) != 1 {
		t.Fatalf("%d SMS requests, want 1", len(sms))
	}
	s := sms[0]
	if s.Path != "/2010-04-01/Accounts/AC0123/Messages.json" || s.User != "AC0123" || s.Password != "sms-secret-token" ||
		s.Form["To"] != "+4915112345678" || s.Form["From"] != "+15005550006" ||
		!strings.Contains(s.Form["Body"], "We blocked a payment of 6,000.00 EUR at m_jewels with card ****1111") {
		t.Fatalf("SMS request %+v", s)
	}

	pushes := e.push.Requests()
	if len(pushes) != 1 {
		t.Fatalf("%d push requests, want 1", len(pushes))
	}
	p := pushes[0]
	if !strings.HasPrefix(p.Header.Get("Authorization"), "vapid t=") || p.Header.Get("Urgency") != "high" || p.Header.Get("Topic") != a.ID {
		t.Fatalf("push headers %v", p.Header)
	}
	plain, err := e.browser.Decrypt(p.Body)
	if err != nil {
		t.Fatalf("decrypt push: %v", err)
	}
	var payload map[string]string
	if err := json.Unmarshal(plain, &payload); err != nil || payload["title"] != "Payment blocked" || payload["alert_id"] != a.ID ||
		payload["body"] != "6,000.00 EUR at m_jewels, card ****1111" {
		t.Fatalf("push payload %s (%v)", plain, err)
	}

	if got := testutil.ToFloat64(e.metrics.Duplicates.WithLabelValues(ChannelSMS)); got != 1 {
		t.Fatalf("duplicates suppressed for sms: %v", got)
	}
	logged := e.log.String()
	if n := strings.Count(logged, `msg="ALERT block"`); n != 1 {
		t.Fatalf("%d ALERT lines, want 1:\n%s", n, logged)
	}
	for _, want := range []string{"channel=email to=" + logging.MaskEmail("ana@example.com"), "channel=sms to=+49********678", "channel=push to=push:"} {
		if !strings.Contains(logged, `msg="DELIVERY sent" alert=`+a.ID) || !strings.Contains(logged, want) {
			t.Errorf("delivery log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, "ana@example.com") || strings.Contains(logged, "+4915112345678") {
		t.Errorf("log shows personal data unmasked:\n%s", logged)
	}
	outcomes, err := e.store.Deliveries(ctx, a.ID)
	if err != nil || len(outcomes) != 3 {
		t.Fatalf("recorded outcomes %+v (%v)", outcomes, err)
	}
	for _, o := range outcomes {
		if o.Status != "sent" || o.Attempts != 1 || o.At.IsZero() {
			t.Errorf("outcome %+v", o)
		}
	}
}

// A late alert (raised after the payment went through) that escalates a payment already alerted under the same
// alert id is delivered once more, and says that nothing was blocked.
func TestLateEscalationIsDeliveredOnceAndSaysThePaymentWentThrough(t *testing.T) {
	e := newEnv(t, "routes: { review: [email], block: [email, sms] }")
	e.ana(t, nil)
	ctx := context.Background()
	first := alert("pay_1", rules.ActionReview)
	if err := e.d.Handle(ctx, first); err != nil {
		t.Fatal(err)
	}
	late := alert("pay_1", rules.ActionBlock)
	late.Late, late.RaisedBy, late.ChangedRules = true, "pay_0", []string{"rapid-fire"}
	for range 2 { // re-emitted after a crash: delivered once
		if err := e.d.Handle(ctx, late); err != nil {
			t.Fatal(err)
		}
	}
	mails := e.smtp.Mails()
	if len(mails) != 2 {
		t.Fatalf("%d emails, want the review's and the late block's", len(mails))
	}
	subject := mails[1].Msg.Header.Get("Subject")
	if !strings.Contains(subject, "has gone through") || strings.Contains(subject, "blocked") ||
		mails[1].Msg.Header.Get("Message-Id") == mails[0].Msg.Header.Get("Message-Id") {
		t.Fatalf("late email: subject %q, Message-Id %q (first %q)", subject, mails[1].Msg.Header.Get("Message-Id"), mails[0].Msg.Header.Get("Message-Id"))
	}
	if text := mails[1].Text["text/plain"]; !strings.Contains(text, "could not be stopped") || strings.Contains(text, "we blocked") {
		t.Fatalf("late email text:\n%s", text)
	}
	sms := e.sms.Requests()
	if len(sms) != 1 || !strings.Contains(sms[0].Form["Body"], "has gone through") || strings.Contains(sms[0].Form["Body"], "We blocked") {
		t.Fatalf("late SMS %+v", sms)
	}
}

func TestRoutingFollowsActionAndPreferences(t *testing.T) {
	e := newEnv(t, "")
	e.ana(t, func(c *topics.Customer) { c.Channels = map[string]bool{"email": false} })
	if err := e.d.Handle(context.Background(), alert("pay_r", rules.ActionReview)); err != nil {
		t.Fatal(err)
	}
	// review goes to email only, and Ana switched email off.
	if len(e.smtp.Mails())+len(e.sms.Requests())+len(e.push.Requests()) != 0 {
		t.Fatal("a review alert was sent although its only channel is switched off")
	}
	// A block cannot be opted out of.
	if err := e.d.Handle(context.Background(), alert("pay_b", rules.ActionBlock)); err != nil {
		t.Fatal(err)
	}
	if len(e.smtp.Mails()) != 1 || len(e.sms.Requests()) != 1 || len(e.push.Requests()) != 1 {
		t.Fatal("a block alert must reach every routed channel")
	}
	// No customer record: the alert is logged, nothing else.
	unknown := alert("pay_u", rules.ActionBlock)
	unknown.AccountID = "acct_nobody"
	if err := e.d.Handle(context.Background(), unknown); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.metrics.NoCustomer); got != 1 || !strings.Contains(e.log.String(), "account=acct_nobody") {
		t.Fatalf("no-customer %v\n%s", got, e.log.String())
	}
}

func TestTemporaryFailuresAreRetried(t *testing.T) {
	e := newEnv(t, "")
	e.ana(t, nil)
	e.smtp.SetFault(func(n int) error {
		if n == 1 {
			return testenv.SMTP451
		}
		return nil
	})
	e.sms.Respond(func(n int, w http.ResponseWriter) bool {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	e.push.Respond(func(n int, w http.ResponseWriter) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	if err := e.d.Handle(context.Background(), alert("pay_t", rules.ActionBlock)); err != nil {
		t.Fatal(err)
	}
	// SMTP 451 and HTTP 503 are retried at once (backoff 10ms); the push service's Retry-After of 1s is longer
	// than the inline backoff allows (50ms), so that delivery is parked and retried when the second is up.
	if len(e.smtp.Mails()) != 1 || len(e.sms.Requests()) != 2 || len(e.push.Requests()) != 1 {
		t.Fatalf("mails %d, sms requests %d, push requests %d", len(e.smtp.Mails()), len(e.sms.Requests()), len(e.push.Requests()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.d.RunDeferred(ctx, 20*time.Millisecond)
	waitFor(t, "the parked push", func() bool { return len(e.push.Requests()) == 2 })
	if pushes := e.push.Requests(); pushes[1].At.Sub(pushes[0].At) < time.Second {
		t.Fatalf("the push service asked for Retry-After: 1, the retry came after %s", pushes[1].At.Sub(pushes[0].At))
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(ChannelPush, "retrying")); got != 1 {
		t.Errorf("push retrying = %v", got)
	}
	for _, ch := range []string{ChannelEmail, ChannelSMS} {
		if got := testutil.ToFloat64(e.metrics.Retries.WithLabelValues(ch)); got != 1 {
			t.Errorf("retries{%s} = %v", ch, got)
		}
	}
	waitFor(t, "every channel sent", func() bool {
		for _, ch := range []string{ChannelEmail, ChannelSMS, ChannelPush} {
			if testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(ch, "sent")) != 1 {
				return false
			}
		}
		return true
	})
	if len(e.dlq.all()) != 0 {
		t.Fatal("temporary failures must not dead-letter")
	}
}

func TestPermanentFailuresAreDeadLetteredWithoutRetry(t *testing.T) {
	e := newEnv(t, "")
	e.ana(t, nil)
	e.smtp.SetFault(func(int) error { return testenv.SMTP550 })
	e.sms.Respond(func(_ int, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`))
		return true
	})
	e.push.Respond(func(_ int, w http.ResponseWriter) bool { w.WriteHeader(http.StatusGone); return true })
	a := alert("pay_p", rules.ActionBlock)
	if err := e.d.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if len(e.sms.Requests()) != 1 || len(e.push.Requests()) != 1 {
		t.Fatal("permanent failures must not be retried")
	}
	reasons := map[string]string{}
	for _, d := range e.dlq.all() {
		if d.AlertID != a.ID || d.Alert == nil || d.Attempts != 1 {
			t.Errorf("dead letter %+v", d)
		}
		reasons[d.Channel] = d.Reason + " to " + d.Recipient
	}
	for ch, want := range map[string]string{
		ChannelEmail: "550", ChannelSMS: "not a valid phone number. (code 21211) to +49********678", ChannelPush: "subscription gone",
	} {
		if !strings.Contains(reasons[ch], want) {
			t.Errorf("dead letter for %s: %q lacks %q", ch, reasons[ch], want)
		}
	}
	// Settled: a redelivered alert does not try again.
	if err := e.d.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if len(e.sms.Requests()) != 1 || len(e.dlq.all()) != 3 {
		t.Fatal("a failed delivery was attempted again")
	}
}

func TestTimeoutRetriesAndCountsThePossibleDuplicate(t *testing.T) {
	e := newEnv(t, "routes: { block: [sms] }")
	e.ana(t, nil)
	e.sms.Respond(func(n int, w http.ResponseWriter) bool {
		if n == 1 {
			time.Sleep(time.Second) // longer than the 300ms client timeout: the provider got it, the notifier cannot know
		}
		return false
	})
	if err := e.d.Handle(context.Background(), alert("pay_to", rules.ActionBlock)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sms.Requests()); n != 2 {
		t.Fatalf("%d SMS requests, want 2 (one timed out)", n)
	}
	if got := testutil.ToFloat64(e.metrics.PossibleDuplicates.WithLabelValues(ChannelSMS)); got != 1 {
		t.Fatalf("possible duplicates %v, want 1", got)
	}
}

func TestProviderOutageOpensTheBreakerParksAndDeliversLater(t *testing.T) {
	e := newEnv(t, "")
	e.ana(t, nil)
	down := true
	var mu sync.Mutex
	e.sms.Respond(func(_ int, w http.ResponseWriter) bool {
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(http.StatusBadGateway)
		}
		return down
	})
	const n = 4
	for i := range n {
		if err := e.d.Handle(context.Background(), alert(fmt.Sprint("pay_o", i), rules.ActionBlock)); err != nil {
			t.Fatal(err)
		}
	}
	// The other channels are not held up by the SMS outage.
	if len(e.smtp.Mails()) != n || len(e.push.Requests()) != n {
		t.Fatalf("mails %d, pushes %d, want %d each", len(e.smtp.Mails()), len(e.push.Requests()), n)
	}
	// 3 tries for the first alert, 2 for the second trip the breaker (5 in a row); then it fails fast.
	if got := len(e.sms.Requests()); got != 5 {
		t.Fatalf("the SMS provider saw %d requests; the breaker should have stopped them at 5", got)
	}
	if got := testutil.ToFloat64(e.metrics.Breaker.WithLabelValues(ChannelSMS)); got != 2 {
		t.Fatalf("breaker state %v, want 2 (open)", got)
	}
	if parked, _ := e.store.Parked(context.Background()); parked != n {
		t.Fatalf("%d deliveries parked, want %d", parked, n)
	}

	mu.Lock()
	down = false
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.d.RunDeferred(ctx, 20*time.Millisecond)
	waitFor(t, "the parked SMS to be delivered", func() bool {
		parked, _ := e.store.Parked(context.Background())
		return parked == 0 && testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(ChannelSMS, "sent")) == n
	})
	if len(e.dlq.all()) != 0 {
		t.Fatal("an outage within the retry budget must not dead-letter")
	}
}

// An open breaker lets a trial send through after its configured timeout, and the parked deliveries come back
// then, not on their own backoff (here seconds apart). Sends the breaker refused are not provider latency.
func TestOpenBreakerIsTriedAfterItsConfiguredTimeout(t *testing.T) {
	e := newEnv(t, "routes: { block: [sms] }\nrate_limits: { sms: { limit: 1000, per: 1h } }\nretry: { attempts: 1, initial: 3s, max: 3s, lease: 1s, breaker_timeout: 500ms }")
	e.ana(t, nil)
	e.sms.Respond(func(_ int, w http.ResponseWriter) bool { w.WriteHeader(http.StatusBadGateway); return true })
	for i := range 6 { // five failures in a row open the breaker; the sixth is refused without a send
		if err := e.d.Handle(context.Background(), alert(fmt.Sprint("pay_b", i), rules.ActionBlock)); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(e.metrics.Breaker.WithLabelValues(ChannelSMS)); got != 2 {
		t.Fatalf("breaker state %v, want 2 (open)", got)
	}
	sent := e.sms.Requests()
	if len(sent) != 5 {
		t.Fatalf("the provider saw %d requests, want 5", len(sent))
	}
	if n := testutil.CollectAndCount(e.metrics.Latency); n != 1 {
		t.Fatalf("%d latency series", n)
	}
	if got := histogramCount(t, e.metrics.Latency.WithLabelValues(ChannelSMS)); got != 5 {
		t.Fatalf("provider latency counts %d sends; the provider saw 5 (the refused one is not a send)", got)
	}
	opened := sent[4].At
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.d.RunDeferred(ctx, 20*time.Millisecond)
	waitFor(t, "a trial send after the breaker's timeout", func() bool { return len(e.sms.Requests()) > 5 })
	trial := e.sms.Requests()[5].At
	// The deliveries' own backoff is 3 s and more; the breaker's timeout is 500 ms.
	if gap := trial.Sub(opened); gap < 500*time.Millisecond || gap > 2500*time.Millisecond {
		t.Fatalf("the first trial came %s after the breaker opened; its timeout is 500ms\n%s", gap, e.log.String())
	}
}

func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestRetryBudgetSpentGoesToTheDeadLetterTopic(t *testing.T) {
	e := newEnv(t, "routes: { block: [sms] }")
	e.ana(t, nil)
	e.sms.Respond(func(_ int, w http.ResponseWriter) bool { w.WriteHeader(http.StatusServiceUnavailable); return true })
	a := alert("pay_budget", rules.ActionBlock)
	if err := e.d.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	// Two hours later the provider still fails: the one-hour budget is spent.
	e.setClock(time.Now().Add(2 * time.Hour))
	if err := e.d.runDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	dl := e.dlq.all()
	if len(dl) != 1 || !strings.Contains(dl[0].Reason, "retry budget of 1h0m0s spent") {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestRateLimitDelaysInsteadOfDropping(t *testing.T) {
	e := newEnv(t, "rate_limits: { sms: { limit: 1, per: 1h } }")
	e.ana(t, nil)
	for i := range 3 {
		if err := e.d.Handle(context.Background(), alert(fmt.Sprint("pay_rl", i), rules.ActionBlock)); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.sms.Requests()) != 1 || len(e.smtp.Mails()) != 3 {
		t.Fatalf("sms %d (want 1 within the limit), mails %d", len(e.sms.Requests()), len(e.smtp.Mails()))
	}
	if parked, _ := e.store.Parked(context.Background()); parked != 2 {
		t.Fatalf("%d parked, want the 2 over the limit", parked)
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues(ChannelSMS, "deferred")); got != 2 {
		t.Fatalf("deferred %v", got)
	}
	if !strings.Contains(e.log.String(), `msg="DELIVERY deferred"`) || !strings.Contains(e.log.String(), "rate limit 1 per 1h0m0s") {
		t.Fatalf("deferral not logged:\n%s", e.log.String())
	}
}

func TestQuietHoursHoldReviewAlertsButNotBlocks(t *testing.T) {
	e := newEnv(t, "")
	now := time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC)
	e.setClock(now)
	e.ana(t, func(c *topics.Customer) {
		c.QuietHours = &topics.QuietHours{Start: "22:00", End: "07:00", TimeZone: "UTC"}
	})
	if err := e.d.Handle(context.Background(), alert("pay_q1", rules.ActionReview)); err != nil {
		t.Fatal(err)
	}
	if len(e.smtp.Mails()) != 0 {
		t.Fatal("a review alert was emailed in quiet hours")
	}
	if err := e.d.Handle(context.Background(), alert("pay_q2", rules.ActionBlock)); err != nil {
		t.Fatal(err)
	}
	if len(e.smtp.Mails()) != 1 || len(e.sms.Requests()) != 1 {
		t.Fatal("a block alert must bypass quiet hours")
	}
	// 06:59: still quiet. 07:00: the review email goes out.
	e.setClock(time.Date(2026, 11, 23, 6, 59, 0, 0, time.UTC))
	e.d.runDue(context.Background())
	if len(e.smtp.Mails()) != 1 {
		t.Fatal("sent before quiet hours ended")
	}
	e.setClock(time.Date(2026, 11, 23, 7, 0, 1, 0, time.UTC))
	if err := e.d.runDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.smtp.Mails()) != 2 {
		t.Fatalf("%d mails after quiet hours, want 2", len(e.smtp.Mails()))
	}
}

func TestRedisOutagePausesUntilItIsBack(t *testing.T) {
	e := newEnv(t, "")
	e.ana(t, nil)
	e.redis.Kill()
	done := make(chan error, 1)
	go func() { done <- e.d.Handle(context.Background(), alert("pay_redis", rules.ActionBlock)) }()
	waitFor(t, "the notifier to notice Redis is down", func() bool { return testutil.ToFloat64(e.metrics.RedisUp) == 0 })
	select {
	case err := <-done:
		t.Fatalf("Handle returned while Redis was down: %v", err)
	default:
	}
	e.redis.Start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Handle did not resume after Redis came back")
	}
	if len(e.smtp.Mails()) != 1 || len(e.sms.Requests()) != 1 || len(e.push.Requests()) != 1 {
		t.Fatal("deliveries after the outage: want exactly one per channel")
	}
	if testutil.ToFloat64(e.metrics.RedisUp) != 1 {
		t.Fatal("redis_up did not return to 1")
	}
}

func TestConfigNeedsSecretsFromTheEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.yaml")
	os.WriteFile(path, []byte("sms: { account_sid: AC1, from: '+1555' }\nemail: { host: h, from: f@x.example, username: u }\n"), 0o644)
	t.Setenv(EnvSMSToken, "")
	t.Setenv(EnvSMTPPassword, "")
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), EnvSMSToken) || !strings.Contains(err.Error(), EnvSMTPPassword) {
		t.Fatalf("want errors naming %s and %s, got %v", EnvSMSToken, EnvSMTPPassword, err)
	}
	os.WriteFile(path, []byte("sms: { account_sid: AC1, token: oops }\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("a secret in the file must be refused, got %v", err)
	}
}
