package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/internal/reference"
	"github.com/fraudpipe/fraudpipe/rules"
)

// Detection is a function of the payments: a realistic stream sent in the order the payments happened, but
// keyed by account, by payment id or not at all (so an account's payments travel through different partitions
// and meet at the detector in an order Kafka does not fix), leaves on the alerts topic, newest alert per payment,
// exactly the outcomes the reference computes from the definition.

// eventTimePipeline starts a pipeline scoring with the reference rules, its lists as files.
func eventTimePipeline(t *testing.T) *pipeline {
	t.Helper()
	return startPipelineWith(t, func(dir string) string {
		src := strings.Replace(reference.Rules, "  blocked-merchants: {}\n  trusted-devices: {}\n",
			"  blocked-merchants: { file: blocked.txt }\n  trusted-devices: { file: trusted.txt }\n", 1)
		files := map[string]string{"blocked.txt": "m_bad\n", "trusted.txt": "dev_trusted\n", "reference.yaml": src}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(dir, "reference.yaml")
	})
}

// sendMixedKeys produces the payments in their event-time order with kcat, in blocks keyed by account id, by
// payment id, and not keyed at all, in turn.
func sendMixedKeys(t *testing.T, brokers string, payments []rules.Payment) {
	t.Helper()
	slices.SortStableFunc(payments, func(a, b rules.Payment) int { return a.Timestamp.Compare(b.Timestamp) })
	const block = 700
	for i := 0; i < len(payments); i += block {
		mode := i / block % 3
		var lines []string
		for _, p := range payments[i:min(i+block, len(payments))] {
			b, _ := json.Marshal(p)
			switch mode {
			case 0:
				lines = append(lines, p.AccountID+"|"+string(b))
			case 1:
				lines = append(lines, p.ID+"|"+string(b))
			default:
				lines = append(lines, string(b))
			}
		}
		kcatProduce(t, brokers, "payments", mode != 2, lines...)
	}
}

// newestOutcomes reads the alerts topic: each payment's newest alert, as the reference describes outcomes.
func newestOutcomes(t *testing.T, brokers string) (map[string]string, int) {
	t.Helper()
	got, late := map[string]string{}, 0
	for _, a := range decodeAlerts(t, kcatConsume(t, brokers, "alerts")) {
		got[reference.Key(a.AccountID, a.PaymentID)] = reference.DescribeFired(a.Action, a.Rules)
		if a.Late {
			late++
		}
	}
	return got, late
}

func alerting(want map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range want {
		if v != "no alert" {
			out[k] = v
		}
	}
	return out
}

func TestAlertsAreAFunctionOfThePaymentsWhateverTheirKeys(t *testing.T) {
	p := eventTimePipeline(t)
	stream := reference.Stream(11, 420)
	if len(stream) < 20000 {
		t.Fatalf("the stream has %d payments, want at least 20,000", len(stream))
	}
	want := alerting(reference.Outcomes(stream))
	unique := len(reference.Outcomes(stream))
	sendMixedKeys(t, p.brokers, stream)
	waitScored(t, p.detMetrics, unique, 5*time.Minute)

	got, late := newestOutcomes(t, p.brokers)
	if d := reference.Diff(want, got); len(d) > 0 {
		t.Fatalf("%d of %d alerting payments differ from the reference, e.g.\n%s", len(d), len(want), strings.Join(d[:min(len(d), 10)], "\n"))
	}
	if late == 0 || metric(p.detMetrics, "fraudpipe_late_alerts_total") != float64(late) {
		t.Fatalf("%d late alerts on the topic, fraudpipe_late_alerts_total %v: the keys did not make payments arrive late",
			late, metric(p.detMetrics, "fraudpipe_late_alerts_total"))
	}
	t.Logf("%d payments (%d unique), %d alerting, %d late alerts", len(stream), unique, len(want), late)
}

func TestAlertsAreAFunctionOfThePaymentsAcrossAKill(t *testing.T) {
	p := eventTimePipeline(t)
	stream := reference.Stream(12, 420)
	want := alerting(reference.Outcomes(stream))
	sendMixedKeys(t, p.brokers, stream)

	waitFor(t, 120*time.Second, "the detector to be mid-stream", func() bool {
		return metric(p.detMetrics, "fraudpipe_payments_processed_total") >= 4000
	})
	at := metric(p.detMetrics, "fraudpipe_payments_processed_total")
	p.detector.kill9()
	if at >= float64(len(stream))*0.9 {
		t.Fatalf("the detector had processed %v of %d payments before the kill; the test proves little", at, len(stream))
	}
	t.Logf("killed the detector after %v of %d payments", at, len(stream))
	p.startDetector(t)

	// Done once the restarted detector has caught up and every write is acknowledged; then nothing may be
	// missing and nothing invented.
	var got map[string]string
	waitFor(t, 5*time.Minute, "the restarted detector to catch up", func() bool {
		if metric(p.detMetrics, "fraudpipe_consumer_lag") != 0 || metric(p.detMetrics, "fraudpipe_producer_buffered_records") != 0 {
			return false
		}
		got, _ = newestOutcomes(t, p.brokers)
		return len(reference.Diff(want, got)) == 0
	})
	got, _ = newestOutcomes(t, p.brokers)
	if d := reference.Diff(want, got); len(d) > 0 {
		t.Fatalf("%d of %d alerting payments differ from the reference, e.g.\n%s", len(d), len(want), strings.Join(d[:min(len(d), 10)], "\n"))
	}
}
