package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/topics"
)

// A payment of about 1 MB (what Java's default producer sends at most), a null record, garbage and a header bomb
// between valid payments: each is dead-lettered once, in a form payments.dlq accepts, the valid payments after them alert exactly
// once, and nothing restarts. Poison on the alerts topic goes to alerts.dlq and the notifier goes on.
func TestPoisonRecordsAreDeadLetteredOnceWithoutARestartLoop(t *testing.T) {
	p := startPipeline(t)
	// Every payment here is over the big-ticket limit, one account each: each alerts alone.
	valid := func(id string) string {
		return pay(id, "acct_"+id, 600000, "EUR", "2026-11-22T10:00:00Z", "DE")
	}
	kcatProduce(t, p.brokers, "payments", false, valid("v1"), valid("v2"))
	// Just below the broker's record batch limit (1,048,588 bytes): larger than the detector's own producer batches
	// (about 1,000,000), so that a dead letter carrying it whole could never be written.
	huge := `{"id":"huge","account_id":"acct_huge","amount":100,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","ip":"` +
		strings.Repeat("9", 1_040_000) + `"}`
	kcatProduceWith(t, p.brokers, "payments", []string{"-X", "message.max.bytes=2000000", "-X", "batch.size=2000000"}, huge)
	kcatProduceWith(t, p.brokers, "payments", []string{"-K", "|", "-Z"}, "acct_null|") // -Z: the empty value is sent as null
	kcatProduce(t, p.brokers, "payments", false, "\x01garbage, not a payment")
	var bomb []string // a valid payment under more headers than any producer of ours sends
	for i := range processors.MaxHeaders + 1 {
		bomb = append(bomb, "-H", fmt.Sprintf("h%d=%d", i, i))
	}
	kcatProduceWith(t, p.brokers, "payments", bomb, valid("bomb"))
	kcatProduce(t, p.brokers, "payments", false, valid("v3"), valid("v4"))

	waitScored(t, p.detMetrics, 4, 2*time.Minute)
	waitFor(t, time.Minute, "four dead letters on payments.dlq", func() bool { return len(kcatConsume(t, p.brokers, "payments.dlq")) >= 4 })

	// Poison on the notifier's input: garbage and a null value.
	kcatProduce(t, p.brokers, "alerts", false, "not an alert")
	kcatProduceWith(t, p.brokers, "alerts", []string{"-K", "|", "-Z"}, "acct_null|")
	// One more valid payment, after all the poison: once its alert is logged, the detector and the notifier have
	// both processed past every poison record, so any restart loop would have shown by now.
	kcatProduce(t, p.brokers, "payments", false, valid("v5"))
	waitScored(t, p.detMetrics, 5, 2*time.Minute)
	waitFor(t, time.Minute, "the alert of v5 in the notifier log", func() bool {
		return len(lines(strings.Join(p.alertLines(), "\n"), "payment=v5")) > 0
	})

	dlq := kcatConsume(t, p.brokers, "payments.dlq")
	byReason := map[string]record{}
	for _, r := range dlq {
		reason := r.Headers[topics.HeaderReason]
		if _, dup := byReason[reason]; dup {
			t.Errorf("two dead letters for %s", reason)
		}
		byReason[reason] = r
	}
	if len(dlq) != 4 {
		t.Fatalf("%d dead letters, want 4: %v", len(dlq), reasonsOf(dlq))
	}
	big, ok := byReason["too_large"]
	if !ok {
		t.Fatalf("no too_large dead letter: %v", reasonsOf(dlq))
	}
	sum := sha256.Sum256([]byte(huge))
	if len(big.Value) != processors.MaxDeadLetterValue || !strings.HasPrefix(huge, big.Value) ||
		big.Headers[topics.HeaderOriginalSize] != strconv.Itoa(len(huge)) ||
		big.Headers[topics.HeaderOriginalSHA256] != hex.EncodeToString(sum[:]) {
		t.Errorf("too_large dead letter: %d bytes, headers %v", len(big.Value), big.Headers)
	}
	if r, ok := byReason[topics.ReasonNullValue]; !ok || r.Key != "acct_null" || r.Headers[topics.HeaderSourceTopic] != "payments" {
		t.Errorf("null_value dead letter: %+v (dead letters: %v)", r, reasonsOf(dlq))
	}
	if r, ok := byReason["not_json"]; !ok || r.Value != "\x01garbage, not a payment" {
		t.Errorf("not_json dead letter: %+v (dead letters: %v)", r, reasonsOf(dlq))
	}
	if r, ok := byReason[topics.ReasonHeaderBomb]; !ok || r.Value != valid("bomb") || r.Headers["h0"] != "" {
		t.Errorf("header_bomb dead letter: %+v (dead letters: %v)", r, reasonsOf(dlq))
	}

	alertsDLQ := kcatConsume(t, p.brokers, string(topics.AlertsDLQ))
	if got := reasonsOf(alertsDLQ); fmt.Sprint(got) != "[not_alert null_value]" {
		t.Errorf("alerts.dlq reasons %v, want [not_alert null_value]", got)
	}

	// Exactly once: on the alerts topic and in the notifier's log.
	var ids []string
	for _, a := range decodeAlerts(t, validAlerts(kcatConsume(t, p.brokers, "alerts"))) {
		ids = append(ids, a.PaymentID)
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[v1 v2 v3 v4 v5]" {
		t.Errorf("alerts for %v, want one each for v1..v5", ids)
	}
	logLines := strings.Join(p.alertLines(), "\n")
	for _, id := range []string{"v1", "v2", "v3", "v4", "v5"} {
		if n := len(lines(logLines, "payment="+id+" ")); n != 1 {
			t.Errorf("alert of %s logged %d times, want once", id, n)
		}
	}
	for name, addr := range map[string]string{"detector": p.detMetrics, "notifier": p.notifier.metricsAddr()} {
		if n := metric(addr, "fraudpipe_processor_restarts_total"); n != 0 {
			t.Errorf("%s restarted %v times", name, n)
		}
		if n := metric(addr, "fraudpipe_record_failures_total"); n != 0 {
			t.Errorf("%s: %v failed attempts", name, n)
		}
	}
	if n := metric(p.detMetrics, "fraudpipe_dead_letters_total"); n != 2 { // null_value, header_bomb; the others are rejected payments
		t.Errorf("detector dead_letters_total = %v, want 2", n)
	}
	if n := len(kcatConsume(t, p.brokers, "payments.dlq")); n != 4 {
		t.Errorf("payments.dlq grew to %d on a later poll", n)
	}
}

func reasonsOf(recs []record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Headers[topics.HeaderReason])
	}
	slices.Sort(out)
	return out
}

// validAlerts drops the records this test wrote to the alerts topic itself.
func validAlerts(recs []record) []record {
	var out []record
	for _, r := range recs {
		if strings.HasPrefix(r.Value, "{") {
			out = append(out, r)
		}
	}
	return out
}
