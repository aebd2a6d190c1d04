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

// confirmRun is fraudpipe run whose notifier sends review and block alerts by SMS with "Was this you?" links,
// and one customer with a phone number.
type confirmRun struct {
	*proc
	dir, brokers, consoleAddr, metricsAddr string
	sms                                    *testenv.HTTPProvider
	account, phone                         string
}

// startConfirmRun starts it; confirmURL gives the links' public address from the console's, args go to run.
func startConfirmRun(t *testing.T, account, phone string, confirmURL func(consoleAddr string) string, args ...string) *confirmRun {
	t.Helper()
	c := &confirmRun{dir: t.TempDir(), sms: testenv.StartHTTPProvider(t), consoleAddr: freeAddr(t), brokers: freeAddr(t),
		account: account, phone: phone}
	copyRules(t, c.dir)
	t.Setenv("FRAUDPIPE_SMS_TOKEN", "e2e-sms-token")
	t.Setenv("FRAUDPIPE_CONFIRM_KEY", "e2e confirmation key, 32 bytes or more")
	config := filepath.Join(c.dir, "notifier.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
routes: { review: [sms], block: [sms] }
sms: { base_url: %q, account_sid: ACe2e, from: "+15005550006" }
confirm: { url: %q, actions: [review, block] }
`, c.sms.URL, confirmURL(c.consoleAddr))), 0o644)
	c.proc = start(t, "run", append([]string{"run", "--data-dir", filepath.Join(c.dir, "data"), "--broker-listen", c.brokers,
		"--rules", filepath.Join(c.dir, "rules.yaml"), "--metrics-addr", "127.0.0.1:0", "--console-addr", c.consoleAddr,
		"--notifier-config", config}, args...)...)
	c.waitStderr(60*time.Second, `msg="console listening"`)
	c.metricsAddr = c.proc.metricsAddr()
	customer, _ := json.Marshal(topics.Customer{AccountID: account, Name: "Ana", Phone: phone})
	kcatProduce(t, c.brokers, "customers", true, account+"|"+string(customer))
	return c
}

// smsLink sends alerting payments (ids prefix0, prefix1...) until an SMS to the customer carries a link that
// linkRE matches, and returns it. The notifier reads customers from their topic: an alert that comes first is
// logged only.
func (c *confirmRun) smsLink(t *testing.T, linkRE *regexp.Regexp, prefix string) string {
	t.Helper()
	var link string
	for i := 0; link == ""; i++ {
		if i == 60 {
			t.Fatalf("no SMS with a link; SMS so far: %+v\n%s", c.sms.Requests(), tail(c.Stderr(), 4096))
		}
		// A fresh payment each round, in case the first came before the customer record.
		kcatProduce(t, c.brokers, "payments", true, c.account+"|"+pay(fmt.Sprintf("%s%d", prefix, i), c.account, 600000, "EUR", "2026-11-22T10:00:00Z", "DE"))
		waitFor(t, 30*time.Second, "the payment scored", func() bool {
			return metric(c.metricsAddr, "fraudpipe_payments_processed_total") >= float64(i+1)
		})
		deadline := time.Now().Add(3 * time.Second)
		for link == "" && time.Now().Before(deadline) {
			for _, req := range c.sms.Requests() {
				if m := linkRE.FindString(req.Form["Body"]); m != "" && req.Form["To"] == c.phone {
					link = m
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return link
}

// deniedTwice waits for the saga to take a denial first and once more repeated, and checks that payment-actions
// then holds block-card and confirm-block for one payment, once each; it returns the commands.
func (c *confirmRun) deniedTwice(t *testing.T) []topics.PaymentCommand {
	t.Helper()
	waitFor(t, time.Minute, "both answers through the saga", func() bool {
		return metric(c.metricsAddr, `fraudpipe_customer_answers_total{answer="denied",outcome="first"}`) == 1 &&
			metric(c.metricsAddr, `fraudpipe_customer_answers_total{answer="denied",outcome="repeated"}`) == 1
	})
	var got []string
	var cmds []topics.PaymentCommand
	for _, rec := range kcatConsume(t, c.brokers, topics.PaymentActions) {
		var cmd topics.PaymentCommand
		if err := json.Unmarshal([]byte(rec.Value), &cmd); err != nil || rec.Key != c.account {
			t.Fatalf("payment-actions record %+v: %v", rec, err)
		}
		got = append(got, cmd.Command+"@"+cmd.PaymentID)
		cmds = append(cmds, cmd)
	}
	sort.Strings(got)
	if len(got) != 2 || !strings.HasPrefix(got[0], "block-card@") || !strings.HasPrefix(got[1], "confirm-block@") ||
		got[0][len("block-card@"):] != got[1][len("confirm-block@"):] {
		t.Fatalf("payment-actions %v, want block-card and confirm-block for the one payment, once each", got)
	}
	return cmds
}

// The customer confirmation saga through fraudpipe run: the SMS for an alert carries a signed "Was this you?"
// link to the console; the customer answers "it wasn't me" (and clicks twice); payment-actions then holds the
// block confirmation and the card block, once each, and the account's case records the answer once; a forged
// link is refused.
func TestACustomerDeniesAPaymentFromTheSMSLink(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	r := startConfirmRun(t, "acct_sms", "+491700000001", func(console string) string { return "http://" + console + "/confirm" })
	link := r.smsLink(t, regexp.MustCompile(`http://`+regexp.QuoteMeta(r.consoleAddr)+`/confirm/\S+`), "sms")

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
	r.deniedTwice(t)

	// The answer is also an event of the account's case, once for the double click.
	waitFor(t, 30*time.Second, "the answer on the case", func() bool {
		n := 0
		for _, rec := range kcatConsume(t, r.brokers, topics.Cases) {
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
	waitFor(t, 30*time.Second, "the label", func() bool { return len(kcatConsume(t, r.brokers, topics.Labels)) == 1 })
	rulesFile := filepath.Join(r.dir, "rules.yaml")
	out, errOut, err := fraudpipeCLI(t, "rules", "backtest", "--brokers", r.brokers, "--live", rulesFile, "--labels", "topic", "--json", rulesFile)
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
