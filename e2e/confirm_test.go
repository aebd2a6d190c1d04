package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/topics"
)

// The customer confirmation saga through fraudpipe run: the SMS for an alert carries a signed "Was this you?"
// link to the console; the customer answers "it wasn't me" (and clicks twice); payment-actions then holds the
// block confirmation and the card block, once each, and the account's case records the answer once; a forged
// link is refused.
func TestACustomerDeniesAPaymentFromTheSMSLink(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	dir := t.TempDir()
	copyRules(t, dir)
	sms := testenv.StartHTTPProvider(t)
	consoleAddr, brokers := freeAddr(t), freeAddr(t)
	t.Setenv("FRAUDPIPE_SMS_TOKEN", "e2e-sms-token")
	t.Setenv("FRAUDPIPE_CONFIRM_KEY", "e2e confirmation key, 32 bytes or more")
	config := filepath.Join(dir, "notifier.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
routes: { review: [sms], block: [sms] }
sms: { base_url: %q, account_sid: ACe2e, from: "+15005550006" }
confirm: { url: "http://%s/confirm", actions: [review, block] }
`, sms.URL, consoleAddr)), 0o644)
	r := start(t, "run", "run", "--data-dir", filepath.Join(dir, "data"), "--broker-listen", brokers, "--rules", filepath.Join(dir, "rules.yaml"),
		"--metrics-addr", "127.0.0.1:0", "--console-addr", consoleAddr, "--notifier-config", config)
	r.waitStderr(60*time.Second, `msg="console listening"`)
	metricsAddr := r.metricsAddr()
	customer, _ := json.Marshal(topics.Customer{AccountID: "acct_sms", Name: "Ana", Phone: "+491700000001"})
	kcatProduce(t, brokers, "customers", true, "acct_sms|"+string(customer))
	// The notifier reads customers from their topic: an alert that comes first is logged only, so payments are
	// sent until one's SMS arrives.
	var link string
	linkRE := regexp.MustCompile(`http://` + regexp.QuoteMeta(consoleAddr) + `/confirm/\S+`)
	for i := 0; link == ""; i++ {
		if i == 60 {
			t.Fatalf("no SMS with a link; SMS so far: %+v\n%s", sms.Requests(), tail(r.Stderr(), 4096))
		}
		// A fresh payment each round, in case the first came before the customer record.
		id := fmt.Sprintf("sms%d", i)
		kcatProduce(t, brokers, "payments", true, "acct_sms|"+pay(id, "acct_sms", 600000, "EUR", "2026-11-22T10:00:00Z", "DE"))
		waitFor(t, 30*time.Second, "the payment scored", func() bool {
			return metric(metricsAddr, "fraudpipe_payments_processed_total") >= float64(i+1)
		})
		deadline := time.Now().Add(3 * time.Second)
		for link == "" && time.Now().Before(deadline) {
			for _, req := range sms.Requests() {
				if m := linkRE.FindString(req.Form["Body"]); m != "" && req.Form["To"] == "+491700000001" {
					link = m
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Was this you?") {
		t.Fatalf("the link's page: %d\n%s", resp.StatusCode, page)
	}
	for range 2 { // a double click
		resp, err := c.PostForm(link, url.Values{"answer": {"denied"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answer: %d", resp.StatusCode)
		}
	}
	forged := link[:len(link)-4] + "AAAA"
	if resp, err := c.PostForm(forged, url.Values{"answer": {"confirmed"}}); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a forged link: %v %v", resp, err)
	}
	waitFor(t, time.Minute, "both answers through the saga", func() bool {
		return metric(metricsAddr, `fraudpipe_customer_answers_total{answer="denied",outcome="first"}`) == 1 &&
			metric(metricsAddr, `fraudpipe_customer_answers_total{answer="denied",outcome="repeated"}`) == 1
	})
	var got []string
	for _, rec := range kcatConsume(t, brokers, topics.PaymentActions) {
		var cmd topics.PaymentCommand
		if err := json.Unmarshal([]byte(rec.Value), &cmd); err != nil || rec.Key != "acct_sms" {
			t.Fatalf("payment-actions record %+v: %v", rec, err)
		}
		got = append(got, cmd.Command+"@"+cmd.PaymentID)
	}
	sort.Strings(got)
	if len(got) != 2 || !strings.HasPrefix(got[0], "block-card@sms") || !strings.HasPrefix(got[1], "confirm-block@sms") ||
		got[0][len("block-card@"):] != got[1][len("confirm-block@"):] {
		t.Fatalf("payment-actions %v, want block-card and confirm-block for the one payment, once each", got)
	}

	// The answer is also an event of the account's case, once for the double click.
	waitFor(t, 30*time.Second, "the answer on the case", func() bool {
		n := 0
		for _, rec := range kcatConsume(t, brokers, topics.Cases) {
			var e topics.CaseEvent
			if json.Unmarshal([]byte(rec.Value), &e) == nil && e.Type == topics.CaseCustomerDenied {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("the answer is %d times on the case", n)
		}
		return n == 1
	})

	// The answer is a label, and a backtest measures the rules against it: the denied payment was alerted.
	waitFor(t, 30*time.Second, "the label", func() bool { return len(kcatConsume(t, brokers, topics.Labels)) == 1 })
	rulesFile := filepath.Join(dir, "rules.yaml")
	out, errOut, err := fraudpipeCLI(t, "rules", "backtest", "--brokers", brokers, "--live", rulesFile, "--labels", "topic", "--json", rulesFile)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, errOut)
	}
	var rep struct {
		Quality struct {
			Live struct {
				Labelled       int `json:"labelled"`
				TruePositives  int `json:"true_positives"`
				FalsePositives int `json:"false_positives"`
				FalseNegatives int `json:"false_negatives"`
			} `json:"live"`
		} `json:"quality"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if q := rep.Quality.Live; q.Labelled != 1 || q.TruePositives != 1 || q.FalsePositives != 0 || q.FalseNegatives != 0 {
		t.Fatalf("backtest against the customer's label: %+v", rep.Quality)
	}
}
