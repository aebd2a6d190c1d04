package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/topics"
)

// notifierEnv is a pipeline whose notifier delivers to local providers and keeps its state in a real Redis.
type notifierEnv struct {
	*pipeline
	redis      *testenv.Redis
	smtp       *testenv.SMTPServer
	sms, push  *testenv.HTTPProvider
	browsers   map[string]*testenv.PushClient // by push endpoint
	config     string
	notMetrics string
	customers  map[string]topics.Customer
}

func startNotifierEnv(t *testing.T, accounts int) *notifierEnv {
	t.Helper()
	p := startPipeline(t) // broker, detector and a log-only notifier we replace below
	p.notifier.kill9()
	// Redis as in production: AUTH and TLS.
	e := &notifierEnv{pipeline: p, redis: testenv.StartRedisWith(t, testenv.RedisOptions{Password: "e2e-redis-pw", TLS: true}), smtp: testenv.StartSMTP(t),
		sms: testenv.StartHTTPProvider(t), push: testenv.StartHTTPProvider(t),
		browsers: map[string]*testenv.PushClient{}, customers: map[string]topics.Customer{}}
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FRAUDPIPE_SMS_TOKEN", "e2e-sms-token")
	t.Setenv("FRAUDPIPE_VAPID_PRIVATE_KEY", priv)
	e.config = filepath.Join(t.TempDir(), "notifier.yaml")
	os.WriteFile(e.config, []byte(fmt.Sprintf(`
routes: { review: [email], block: [email, sms, push] }
rate_limits: { email: { limit: 1000, per: 1h }, sms: { limit: 1000, per: 1h }, push: { limit: 1000, per: 1h } }
retry: { attempts: 3, initial: 50ms, max: 200ms, lease: 2s, breaker_timeout: 1s }
email: { host: %s, port: %d, from: "alerts@bank.example", tls: none }
sms: { base_url: %q, account_sid: ACe2e, from: "+15005550006" }
push: { subscriber: "mailto:ops@bank.example", vapid_public_key: %q }
`, e.smtp.Host, e.smtp.Port, e.sms.URL, pub)), 0o644)

	// The customer base: every account has email and phone; every fifth also a push subscription.
	var lines []string
	for i := range accounts {
		c := topics.Customer{AccountID: producer.AccountID(i), Name: fmt.Sprint("Customer ", i),
			Email: fmt.Sprintf("c%d@example.com", i), Phone: fmt.Sprintf("+4915%09d", i)}
		if i%5 == 0 {
			b, err := testenv.NewPushClient()
			if err != nil {
				t.Fatal(err)
			}
			sub := topics.PushSubscription{Endpoint: fmt.Sprintf("%s/push/%d", e.push.URL, i)}
			sub.Keys.P256dh, sub.Keys.Auth = b.P256dh, b.Auth
			c.Push = []topics.PushSubscription{sub}
			e.browsers[sub.Endpoint] = b
		}
		e.customers[c.AccountID] = c
		j, _ := json.Marshal(c)
		lines = append(lines, string(j))
	}
	file := filepath.Join(t.TempDir(), "customers.jsonl")
	os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	if out, err := exec.Command(binary, "produce", "--brokers", p.brokers, "--customers", file).CombinedOutput(); err != nil {
		t.Fatalf("produce customers: %v\n%s", err, out)
	}
	e.startNotifier(t)
	return e
}

func (e *notifierEnv) startNotifier(t *testing.T) {
	t.Helper()
	t.Setenv("FRAUDPIPE_REDIS", e.redis.URL()) // the password stays off the command line
	e.notifier = start(t, "notifier", "notifier", "--brokers", e.brokers, "--redis-ca-file", e.redis.CAFile,
		"--notifier-config", e.config, "--metrics-addr", "127.0.0.1:0")
	e.notifier.waitStderr(30*time.Second, "notifier started")
	e.notMetrics = e.notifier.metricsAddr()
}

func (e *notifierEnv) generate(t *testing.T, accounts, count int) {
	t.Helper()
	out, err := exec.Command(binary, "produce", "--brokers", e.brokers, "--generate", "--with-customers=false",
		"--accounts", fmt.Sprint(accounts), "--count", fmt.Sprint(count), "--rate", "0", "--fraud", "0.03", "--seed", "5",
		"--start", "2026-11-22T08:00:00Z").CombinedOutput()
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, out)
	}
	waitScored(t, e.detMetrics, count, 60*time.Second)
}

// delivery identifies one notification: channel, recipient and alert.
type delivery struct{ channel, to, alert string }

// expected lists the deliveries the alerts on the topic call for.
func (e *notifierEnv) expected(t *testing.T) map[delivery]bool {
	t.Helper()
	want := map[delivery]bool{}
	for _, a := range decodeAlerts(t, kcatConsume(t, e.brokers, "alerts")) {
		c := e.customers[a.AccountID]
		want[delivery{"email", c.Email, a.ID}] = true
		if a.Action == "block" {
			want[delivery{"sms", c.Phone, a.ID}] = true
			for _, s := range c.Push {
				want[delivery{"push", s.Endpoint, a.ID}] = true
			}
		}
	}
	if len(want) < 20 {
		t.Fatalf("only %d deliveries expected; the stream is too small to tell anything", len(want))
	}
	return want
}

var refRE = regexp.MustCompile(`alert_[0-9a-f]{24}`)

// received lists what the providers got, counting repeats.
func (e *notifierEnv) received(t *testing.T) map[delivery]int {
	t.Helper()
	got := map[delivery]int{}
	for _, m := range e.smtp.Mails() {
		got[delivery{"email", m.To[0], refRE.FindString(m.Text["text/plain"])}]++
	}
	for _, r := range e.sms.Requests() {
		got[delivery{"sms", r.Form["To"], refRE.FindString(r.Form["Body"])}]++
	}
	for _, r := range e.push.Requests() {
		endpoint := e.push.URL + r.Path
		plain, err := e.browsers[endpoint].Decrypt(r.Body)
		if err != nil {
			t.Fatalf("push to %s does not decrypt: %v", endpoint, err)
		}
		var payload map[string]string
		json.Unmarshal(plain, &payload)
		got[delivery{"push", endpoint, payload["alert_id"]}]++
	}
	return got
}

// waitDelivered waits until every expected delivery arrived and returns what arrived.
func (e *notifierEnv) waitDelivered(t *testing.T, want map[delivery]bool) map[delivery]int {
	t.Helper()
	var got map[delivery]int
	waitFor(t, 90*time.Second, fmt.Sprintf("%d deliveries", len(want)), func() bool {
		got = e.received(t)
		for d := range want {
			if got[d] == 0 {
				return false
			}
		}
		return true
	})
	for d, n := range got {
		if !want[d] {
			t.Errorf("unexpected delivery %+v", d)
		}
		_ = n
	}
	return got
}

func TestAlertsReachEmailSMSAndPushExactlyOnce(t *testing.T) {
	e := startNotifierEnv(t, 200)
	e.generate(t, 200, 2000)
	want := e.expected(t)
	got := e.waitDelivered(t, want)
	for d, n := range got {
		if n != 1 {
			t.Errorf("%+v delivered %d times", d, n)
		}
	}
	counts := map[string]int{}
	for d := range want {
		counts[d.channel]++
	}
	t.Logf("delivered exactly once: %v", counts)
	if counts["sms"] == 0 || counts["push"] == 0 {
		t.Fatalf("the stream produced no block alert with SMS and push: %v", counts)
	}
	for _, r := range e.sms.Requests() {
		if r.User != "ACe2e" || r.Password != "e2e-sms-token" {
			t.Fatalf("SMS request without the account's Basic auth: %+v", r)
		}
	}
	// "Was this alert delivered, where, when?"
	var blockAlert string
	for d := range want {
		if d.channel == "sms" {
			blockAlert = d.alert
		}
	}
	out, err := exec.Command(binary, "deliveries", "--redis", e.redis.URL(), "--redis-ca-file", e.redis.CAFile, blockAlert).CombinedOutput()
	if err != nil {
		t.Fatalf("deliveries: %v\n%s", err, out)
	}
	for _, ch := range []string{"email", "sms"} {
		if !regexp.MustCompile(blockAlert + `\s+` + ch + `\s+\S+\s+sent\s+1\s+2\d{3}-`).Match(out) {
			t.Fatalf("deliveries does not show the %s delivery as sent:\n%s", ch, out)
		}
	}

	// Every delivery is in the log channel, with the recipient masked.
	out = []byte(e.notifier.Stdout())
	if n := strings.Count(string(out), `msg="DELIVERY sent"`); n != len(want) {
		t.Fatalf("%d DELIVERY sent lines, want %d", n, len(want))
	}
	for _, c := range e.customers {
		if strings.Contains(string(out), c.Email) || strings.Contains(string(out), c.Phone) {
			t.Fatalf("the log shows %s's email or phone unmasked", c.AccountID)
		}
	}
}

func TestNotifierKilledBetweenProviderAcceptAndMarkSent(t *testing.T) {
	e := startNotifierEnv(t, 200)
	var once sync.Once
	killed := make(chan struct{})
	// The SMS provider accepts the first message, and the notifier dies before it hears back.
	victim := e.notifier
	e.sms.SetHook(func(int) {
		once.Do(func() {
			victim.kill9()
			close(killed)
		})
	})
	e.generate(t, 200, 2000)
	want := e.expected(t)
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("no SMS was sent")
	}
	e.startNotifier(t)
	got := e.waitDelivered(t, want)
	dups := 0
	for d, n := range got {
		dups += n - 1
		if n > 2 {
			t.Errorf("%+v delivered %d times", d, n)
		}
	}
	first := e.sms.Requests()[0]
	if got[delivery{"sms", first.Form["To"], refRE.FindString(first.Form["Body"])}] != 2 {
		t.Fatal("the SMS accepted before the kill should have been sent again (the documented window)")
	}
	possible := metric(e.notMetrics, "fraudpipe_notifier_possible_duplicates_total")
	if float64(dups) > possible || dups < 1 {
		t.Fatalf("%d duplicates, %v counted by fraudpipe_notifier_possible_duplicates_total: every duplicate must be counted", dups, possible)
	}
	t.Logf("%d deliveries, %d duplicated in the kill window, %v counted as possible duplicates", len(want), dups, possible)
}

func TestRedisRestartLosesNothingAndRepeatsNothing(t *testing.T) {
	e := startNotifierEnv(t, 200)
	// Redis dies when the first SMS arrives and comes back four seconds later.
	var once sync.Once
	restarted := make(chan error, 1)
	e.sms.SetHook(func(int) {
		once.Do(func() {
			e.redis.Kill()
			time.AfterFunc(4*time.Second, func() { restarted <- e.redis.TryStart() }) // longer than go-redis retries for itself
		})
	})
	e.sms.Respond(func(int, http.ResponseWriter) bool { return false })
	e.generate(t, 200, 2000)
	want := e.expected(t)
	got := e.waitDelivered(t, want)
	select {
	case err := <-restarted:
		if err != nil {
			t.Fatalf("restart redis: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("redis was never restarted: the first SMS never arrived")
	}
	for d, n := range got {
		if n != 1 {
			t.Errorf("%+v delivered %d times", d, n)
		}
	}
	if !strings.Contains(e.notifier.Stderr(), "redis unavailable; pausing") || !strings.Contains(e.notifier.Stderr(), "redis is back; resuming") {
		t.Fatalf("the notifier did not pause and resume:\n%s", strings.Join(lines(e.notifier.Stderr(), "redis"), "\n"))
	}
}
