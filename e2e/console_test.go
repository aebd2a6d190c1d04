package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

var consoleListening = regexp.MustCompile(`msg="console listening" url=(http://\S+)`)

// consoleRun is fraudpipe run with its console on a free port, and an HTTP client signed in as the developer with the
// password run wrote to its data directory (checked to be readable by its owner only, and never logged).
type consoleRun struct {
	proc          *proc
	brokers, base string
	client        *http.Client
}

func startConsoleRun(t *testing.T) consoleRun {
	t.Helper()
	embeddedOnly(t)
	requireTool(t, "kcat")
	dir := t.TempDir()
	copyRules(t, dir)
	brokers := freeAddr(t)
	data := filepath.Join(dir, "data")
	r := start(t, "run", "run", "--data-dir", data, "--broker-listen", brokers, "--rules", filepath.Join(dir, "rules.yaml"),
		"--metrics-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0")
	r.waitStderr(60*time.Second, `msg="console listening"`)
	base := consoleListening.FindStringSubmatch(r.Stderr())[1]
	if strings.Contains(r.Stderr(), "password=") {
		t.Fatal("the console's password is in the log")
	}
	password, err := os.ReadFile(filepath.Join(data, "console.password"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(data, "console.password")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("console.password is readable by others: %v", fi.Mode())
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(base+"/login", url.Values{"user": {"analyst"}, "password": {strings.TrimSpace(string(password))}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("sign-in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return consoleRun{proc: r, brokers: brokers, base: base, client: c}
}

// get fetches a console page with the signed-in client: its status and body, 0 when it does not answer.
func (cr consoleRun) get(path string) (int, string) {
	resp, err := cr.client.Get(cr.base + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fraudpipe run serves the analysts' console: the developer signs in with the password run wrote to its data
// directory, and an alert the pipeline raises shows on the console's live view.
func TestRunServesTheConsoleWithThePipelinesAlerts(t *testing.T) {
	cr := startConsoleRun(t)
	kcatProduce(t, cr.brokers, "payments", true, "acct_console|"+pay("console1", "acct_console", 600000, "EUR", "2026-11-22T10:00:00Z", "DE"))
	waitFor(t, 2*time.Minute, "the alert on the console", func() bool {
		code, body := cr.get("/")
		return code == http.StatusOK && strings.Contains(body, "console1") && strings.Contains(body, "acct_console")
	})
}

// fraudpipe console on its own, against a cluster, behind an authenticating proxy: it runs the cases group and
// its view (both ready), and an alert on the cluster becomes a case on its queue.
func TestTheConsoleAloneServesCases(t *testing.T) {
	dir := t.TempDir()
	c := startBroker(t, filepath.Join(dir, "broker"))
	con := start(t, "console", "console", "--brokers", c.brokers, "--console-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state"), "--console-proxy-user-header", "X-Forwarded-User")
	con.waitStderr(60*time.Second, `msg="console listening"`)
	base := consoleListening.FindStringSubmatch(con.Stderr())[1]
	metricsAddr := con.metricsAddr()
	waitFor(t, time.Minute, "the console ready", func() bool {
		code, body := probe(metricsAddr, "/readyz")
		return code == http.StatusOK && strings.Contains(body, "cases-view: ready") && strings.Contains(body, "cases: ready")
	})
	alert, _ := json.Marshal(topics.Alert{ID: "alert_alone", AccountID: "acct_alone", PaymentID: "pay_alone", Action: topics.ActionBlock,
		Score: 90, Rules: []topics.Fired{{Name: "big-ticket", Score: 90, Reason: "amount 9,000.00 EUR > limit 5,000.00 EUR"}},
		DetectedAt: time.Now().UTC()})
	kcatProduce(t, c.brokers, topics.Alerts, true, "acct_alone|"+string(alert))
	waitFor(t, time.Minute, "the case on the queue", func() bool {
		req, _ := http.NewRequest("GET", base+"/cases", nil)
		req.Header.Set("X-Forwarded-User", "carol")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(b), "acct_alone #1")
	})
}
