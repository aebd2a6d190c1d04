package e2e

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

var formID = regexp.MustCompile(`name="form" value="([^"]+)"`)

// Cases through fraudpipe run: an alerting payment opens a case that the console's queue and case page show (read
// through the cases group's view); an analyst's verdict, sent twice from the same form, lands on the cases topic
// once and labels the payment once; the metrics count the open case and the verdict.
func TestAnAlertOpensACaseAndTheAnalystsVerdictLabelsItOnce(t *testing.T) {
	cr := startConsoleRun(t)
	brokers, base, c, page := cr.brokers, cr.base, cr.client, cr.get
	metricsAddr := cr.proc.metricsAddr()

	kcatProduce(t, brokers, "payments", true, "acct_case|"+pay("case1", "acct_case", 600000, "EUR", "2026-11-22T10:00:00Z", "DE"))
	waitFor(t, 2*time.Minute, "the case in the queue", func() bool {
		code, body := page("/cases")
		return code == http.StatusOK && strings.Contains(body, `href="/cases/acct_case/1"`)
	})
	code, body := page("/cases/acct_case/1")
	if code != http.StatusOK || !strings.Contains(body, "case1") || !strings.Contains(body, "big-ticket") || !strings.Contains(body, "6,000.00 EUR") {
		t.Fatalf("the case page: %d\n%s", code, body)
	}
	form := formID.FindStringSubmatch(body)
	if form == nil {
		t.Fatalf("no form on the case page:\n%s", body)
	}
	for range 2 { // a double click
		resp, err := c.PostForm(base+"/cases/acct_case/1", url.Values{"form": {form[1]}, "op": {"verdict"}, "verdict": {"fraud"},
			"note": {"card used from an unknown device"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The console waited for the view: the page it redirects to already shows the verdict.
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/cases/acct_case/1" || resp.Request.URL.RawQuery != "" ||
			!strings.Contains(html.UnescapeString(string(b)), "fraud by analyst: card used from an unknown device") {
			t.Fatalf("after the verdict: %d at %s\n%s", resp.StatusCode, resp.Request.URL, b)
		}
	}

	waitFor(t, 30*time.Second, "the verdict metric", func() bool {
		return metric(metricsAddr, `fraudpipe_case_verdicts_total{verdict="fraud"}`) >= 1
	})
	var events []string
	for _, rec := range kcatConsume(t, brokers, topics.Cases) {
		var e topics.CaseEvent
		if err := json.Unmarshal([]byte(rec.Value), &e); err != nil || rec.Key != topics.CaseEventKey(e.CaseID, e.Seq) {
			t.Fatalf("cases record %+v: %v", rec, err)
		}
		events = append(events, rec.Key+"="+string(e.Type)+"/"+e.By)
	}
	if strings.Join(events, " ") != "acct_case:1/00000001=opened/pipeline acct_case:1/00000002=verdict/analyst" {
		t.Fatalf("the cases topic holds %v", events)
	}
	var labels []string
	for _, rec := range kcatConsume(t, brokers, topics.Labels) {
		var l topics.Label
		if err := json.Unmarshal([]byte(rec.Value), &l); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, rec.Key+"="+string(l.Verdict)+"/"+l.Source)
	}
	if len(labels) != 1 || !strings.HasPrefix(labels[0], "acct_case/case1") || !strings.HasSuffix(labels[0], "=fraud/analyst") {
		t.Fatalf("labels %v, want the payment's once, fraud by the analyst", labels)
	}
	if n := metric(metricsAddr, "fraudpipe_cases_open"); n != 1 {
		t.Fatalf("fraudpipe_cases_open %v", n)
	}
	if code, body := page("/quality"); code != http.StatusOK || !strings.Contains(body, `data-rule="big-ticket"`) {
		t.Fatalf("rule quality: %d\n%s", code, body)
	}
}
