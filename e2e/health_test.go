package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// probe asks a health endpoint (/healthz, /readyz); code 0 when it does not answer.
func probe(addr, path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitProbe waits until path answers code with a body containing every one of parts.
func waitProbe(t *testing.T, addr, path string, code int, parts ...string) string {
	t.Helper()
	var body string
	var got int
	waitFor(t, 3*time.Minute, path+" to answer "+http.StatusText(code)+" with "+strings.Join(parts, ", "), func() bool {
		got, body = probe(addr, path)
		if got != code {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(body, p) {
				return false
			}
		}
		return true
	})
	return body
}

// The detector's /readyz follows the broker: 503 naming Kafka while it is down, 200 once it is back and the
// detector runs again. /healthz (liveness) does not fail for an external broker that is down.
func TestReadyzFollowsTheBroker(t *testing.T) {
	p := startPipeline(t)
	waitProbe(t, p.detMetrics, "/readyz", http.StatusOK, "ok\n", "detector: ready: running", "kafka: ready: answers at "+p.brokers)

	p.down()
	body := waitProbe(t, p.detMetrics, "/readyz", http.StatusServiceUnavailable, "not ready\n", "kafka: not ready: no answer from "+p.brokers)
	t.Logf("/readyz with the broker down:\n%s", body)
	if code, body := probe(p.detMetrics, "/healthz"); code != http.StatusOK || !strings.Contains(body, "kafka: live") {
		t.Errorf("/healthz with an external broker down: %d\n%s", code, body)
	}

	p.up()
	waitProbe(t, p.detMetrics, "/readyz", http.StatusOK, "detector: ready: running", "kafka: ready")
	// And it works again: a payment is scored.
	kcatProduce(t, p.brokers, "payments", false, pay("after", "acct_after", 600000, "EUR", "2026-11-22T10:00:00Z", "DE"))
	waitScored(t, p.detMetrics, 1, 2*time.Minute)
}

// fraudpipe run reports its three parts: the embedded broker, the detector and the notifier.
func TestRunReportsEveryPart(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	dir := t.TempDir()
	copyRules(t, dir)
	r := start(t, "run", "run", "--data-dir", filepath.Join(dir, "data"), "--broker-listen", freeAddr(t),
		"--rules", filepath.Join(dir, "rules.yaml"), "--metrics-addr", "127.0.0.1:0")
	addr := r.metricsAddr()
	body := waitProbe(t, addr, "/readyz", http.StatusOK, "broker: ready", "detector: ready: running", "notifier: ready: running",
		"redis: ready: answers at embedded")
	if strings.Contains(body, "startup") {
		t.Errorf("/readyz still reports start-up:\n%s", body)
	}
	waitProbe(t, addr, "/healthz", http.StatusOK, "broker: live", "detector: live", "notifier: live", "redis: live")
}

// A record that fails on every attempt, for a reason no restart fixes (Redis refuses writes: out of memory), is
// tried --record-attempts times. Under policy stop the notifier stays stopped and /readyz and /healthz say why;
// under policy skip the alert goes to alerts.dlq (retries_exhausted) and the notifier goes on, ready again.
func TestRecordFailingEveryAttemptFollowsThePolicy(t *testing.T) {
	dir := t.TempDir()
	c := startBroker(t, filepath.Join(dir, "broker"))
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	notifier := func(policy string) (*proc, string) {
		n := start(t, "notifier-"+policy, "notifier", "--brokers", c.brokers, "--redis", r.URL(), "--metrics-addr", "127.0.0.1:0",
			"--record-attempts", "2", "--record-failure-policy", policy)
		n.waitStderr(30*time.Second, "notifier started")
		addr := n.metricsAddr()
		waitProbe(t, addr, "/readyz", http.StatusOK, "notifier: ready: running")
		return n, addr
	}
	alert := func(id string) string {
		p := rules.Payment{ID: id, AccountID: "acct_" + id, Amount: 600000, Currency: "EUR", Timestamp: mustTime("2026-11-22T10:00:00Z")}
		b, _ := json.Marshal(topics.Alert{ID: topics.AlertID(p.AccountID, p.ID), PaymentID: p.ID, AccountID: p.AccountID,
			Score: 60, Action: rules.ActionReview, Rules: []rules.Fired{{Name: "big-ticket", Score: 60, Reason: "big"}}, Payment: p})
		return p.AccountID + "|" + string(b)
	}

	stopper, addr := notifier("stop")
	// Redis now refuses every write with an error reply: not an outage the notifier waits out.
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	kcatProduce(t, c.brokers, "alerts", true, alert("p1"))
	body := waitProbe(t, addr, "/readyz", http.StatusServiceUnavailable,
		"notifier: not ready: stopped by the record failure policy: record alerts/", "failed 2 times", "OOM")
	t.Logf("/readyz:\n%s", body)
	waitProbe(t, addr, "/healthz", http.StatusServiceUnavailable, "notifier: not live: stopped by the record failure policy")
	if n := metric(addr, "fraudpipe_processor_stopped"); n != 1 {
		t.Errorf("fraudpipe_processor_stopped = %v", n)
	}
	if n := metric(addr, "fraudpipe_record_failures_total"); n != 2 {
		t.Errorf("fraudpipe_record_failures_total = %v, want 2", n)
	}
	if n := len(lines(stopper.Stderr(), "stopping the processor (policy stop)")); n != 1 {
		t.Errorf("%d log lines about the stop, want 1", n)
	}
	stopper.interrupt()

	// The next notifier of the group resumes at the same alert, which fails twice more and is skipped.
	_, addr = notifier("skip")
	waitFor(t, 2*time.Minute, "the alert in alerts.dlq", func() bool { return len(kcatConsume(t, c.brokers, "alerts.dlq")) > 0 })
	dl := kcatConsume(t, c.brokers, "alerts.dlq")
	if len(dl) != 1 || dl[0].Headers[topics.HeaderReason] != topics.ReasonRetriesExhausted || dl[0].Headers[topics.HeaderAttempts] != "2" ||
		!strings.Contains(dl[0].Value, `"payment_id":"p1"`) {
		t.Fatalf("alerts.dlq: %+v", dl)
	}
	// Redis fixed: the notifier is ready and delivers the next alert.
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitProbe(t, addr, "/readyz", http.StatusOK, "notifier: ready: running")
	kcatProduce(t, c.brokers, "alerts", true, alert("p2"))
	waitFor(t, time.Minute, "the alert of p2 to be handled", func() bool {
		return metric(addr, "fraudpipe_notifier_alerts_total") >= 1 && metric(addr, "fraudpipe_processor_stopped") == 0
	})
}
