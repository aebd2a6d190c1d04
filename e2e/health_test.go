package e2e

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	body := waitProbe(t, addr, "/readyz", http.StatusOK, "broker: ready", "detector: ready: running", "notifier: ready: running")
	if strings.Contains(body, "startup") {
		t.Errorf("/readyz still reports start-up:\n%s", body)
	}
	waitProbe(t, addr, "/healthz", http.StatusOK, "broker: live", "detector: live", "notifier: live")
}
