package detector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

var (
	t0  = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	now = time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)
)

const testRules = `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: big-ticket, type: amount, limit: 500000, score: 60 }
  - { name: rapid-fire, type: count, window: 5m, limit: 2, score: 50 }
`

type fixture struct {
	tt      *tester.Tester
	metrics *detector.Metrics
	proc    *goka.Processor
	alerts  *tester.QueueTracker
	dlq     *tester.QueueTracker
	clock   *time.Time // what start's detector takes for now
}

func start(t *testing.T) *fixture {
	t.Helper()
	rs, err := rules.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	f := runDetector(t, detector.Config{
		Rules: func() *rules.Ruleset { return rs }, Partitions: 1, Now: func() time.Time { return clock },
	})
	f.clock = &clock
	return f
}

func payment(id, account string, amount int64, at time.Duration) []byte {
	b, _ := json.Marshal(rules.Payment{ID: id, AccountID: account, Amount: amount, Currency: "EUR", Timestamp: t0.Add(at)})
	return b
}

func (f *fixture) send(key string, value []byte) {
	f.tt.Consume(string(topics.Payments), key, value, tester.WithTime(t0))
}

func (f *fixture) nextAlert(t *testing.T) *topics.Alert {
	t.Helper()
	_, v, ok := f.alerts.Next()
	if !ok {
		t.Fatal("expected an alert, got none")
	}
	return v.(*topics.Alert)
}

// drainAlerts reads every alert emitted since the last read.
func (f *fixture) drainAlerts() []*topics.Alert {
	var out []*topics.Alert
	for {
		_, v, ok := f.alerts.Next()
		if !ok {
			return out
		}
		out = append(out, v.(*topics.Alert))
	}
}

func (f *fixture) noAlert(t *testing.T) {
	t.Helper()
	if k, v, ok := f.alerts.Next(); ok {
		t.Fatalf("unexpected alert for %s: %s", k, v)
	}
}

func TestAlertCarriesTheDecision(t *testing.T) {
	f := start(t)
	f.send("acct_1", payment("p1", "acct_1", 600000, 0))
	a := f.nextAlert(t)
	want := topics.Alert{
		ID: topics.AlertID("acct_1", "p1"), PaymentID: "p1", AccountID: "acct_1", Score: 60, Action: rules.ActionReview,
		Rules:      []rules.Fired{{Name: "big-ticket", Score: 60, Reason: "amount 6,000.00 EUR > limit 5,000.00 EUR"}},
		DetectedAt: now,
	}
	if a.ID != want.ID || a.Score != want.Score || a.Action != want.Action || !a.DetectedAt.Equal(now) ||
		fmt.Sprint(a.Rules) != fmt.Sprint(want.Rules) || a.Payment.Amount != 600000 || a.RulesetDigest == "" {
		t.Fatalf("alert\n%+v\nwant\n%+v", a, want)
	}
	f.send("acct_1", payment("p2", "acct_1", 100, time.Minute))
	f.noAlert(t)
	// Third payment in 5 minutes: rapid-fire (50) plus big-ticket (60) = 100, capped: block.
	f.send("acct_1", payment("p3", "acct_1", 700000, 2*time.Minute))
	a = f.nextAlert(t)
	if a.Action != rules.ActionBlock || a.Score != 100 || len(a.Rules) != 2 {
		t.Fatalf("want a block alert from two rules, got %+v", a)
	}
	if got := testutil.ToFloat64(f.metrics.Processed); got != 3 {
		t.Fatalf("processed %v", got)
	}
}

func TestMalformedPaymentsGoToTheDeadLetterTopicAndNotToState(t *testing.T) {
	f := start(t)
	f.send("acct_1", []byte(`{"id":"bad","account_id":"acct_1","amount":-1,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`))
	f.send("acct_1", []byte(`not json`))
	for _, reason := range []string{rules.ReasonBadAmount, rules.ReasonNotJSON} {
		h, key, v, ok := f.dlq.NextWithHeaders()
		if !ok {
			t.Fatalf("no dead letter for %s", reason)
		}
		if key != "acct_1" || string(h[topics.HeaderReason]) != reason || string(h[topics.HeaderSourceTopic]) != "payments" {
			t.Fatalf("dead letter %s %s headers %v", key, v, h)
		}
	}
	if v := f.tt.TableValue(detector.Table, "acct_1"); v != nil {
		t.Fatalf("rejected payments must not touch state, got %+v", v)
	}
	// The pipeline goes on: two valid payments plus one more make rapid-fire fire at the third.
	for i := range 3 {
		f.send("acct_1", payment(fmt.Sprint("ok", i), "acct_1", 100, time.Duration(i)*time.Second))
	}
	if a := f.nextAlert(t); a.PaymentID != "ok2" {
		t.Fatalf("alert for %s, want ok2", a.PaymentID)
	}
	if got := testutil.ToFloat64(f.metrics.Rejected.WithLabelValues(rules.ReasonNotJSON)); got != 1 {
		t.Fatalf("rejected{not_json} = %v", got)
	}
}

func TestProducerRetryIsCountedOnceAndAlertsOnce(t *testing.T) {
	f := start(t)
	f.send("acct_1", payment("p1", "acct_1", 600000, 0))
	f.nextAlert(t)
	f.send("acct_1", payment("p1", "acct_1", 600000, 0)) // the same payment again, as a retrying producer sends it
	f.noAlert(t)
	f.send("acct_1", payment("p2", "acct_1", 100, time.Second))
	f.noAlert(t) // p1 counted once: two payments in the window, limit 2
	f.send("acct_1", payment("p3", "acct_1", 100, 2*time.Second))
	if a := f.nextAlert(t); a.PaymentID != "p3" || a.Rules[0].Reason != "3 payments in 5m > limit 2" {
		t.Fatalf("alert %+v", a)
	}
	if got := testutil.ToFloat64(f.metrics.Duplicates); got != 1 {
		t.Fatalf("duplicates %v", got)
	}
}

func TestAnAlertCarriesTheAccountsRecentPayments(t *testing.T) {
	f := start(t)
	f.send("acct_1", payment("p1", "acct_1", 100, 0))
	f.send("acct_1", payment("p2", "acct_1", 200, time.Second))
	f.send("acct_1", payment("p3", "acct_1", 600000, 2*time.Second))
	a := f.nextAlert(t)
	if a.PaymentID != "p3" || len(a.Recent) != 2 || a.Recent[0].ID != "p2" || a.Recent[0].Amount != 200 ||
		a.Recent[1].ID != "p1" || a.Recent[1].Action != rules.ActionNone || a.Recent[0].AccountID != "acct_1" {
		t.Fatalf("alert %s recent %+v, want p2 then p1", a.PaymentID, a.Recent)
	}
	// The state keeps the alert for re-emission without them: the state holds those payments itself.
	st := f.tt.TableValue(detector.Table, "acct_1").(*rules.State)
	if _, stored, _ := st.Lookup("p3"); strings.Contains(string(stored), "recent") {
		t.Fatalf("stored alert keeps the recent payments: %s", stored)
	}
}

func TestRedeliveryAfterCrashReEmitsTheStoredAlert(t *testing.T) {
	f := start(t)
	// The state of a detector that stored p1 and its alert locally, then died before the alert reached Kafka.
	// The next record on payments/0 is offset 0, which is the record the state says delivered p1.
	// Alerts are stored without their payment; the redelivered record supplies it.
	stored := []byte(`{"id":"alert_stored","payment_id":"p1","score":60,"detected_at":"2026-11-22T10:00:01Z"}`)
	st := new(rules.State)
	st.Remember("p1", rules.SourceID("payments", 0, 0), stored)
	f.tt.SetTableValue(detector.Table, "acct_1", st)

	f.send("acct_1", payment("p1", "acct_1", 600000, 0))
	_, v, ok := f.alerts.NextRaw()
	var a topics.Alert
	if !ok || json.Unmarshal(v, &a) != nil || a.ID != "alert_stored" || a.Score != 60 ||
		!a.DetectedAt.Equal(time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)) || a.Payment.ID != "p1" || a.Payment.Amount != 600000 {
		t.Fatalf("want the stored alert re-emitted with its payment, got %s", v)
	}
	if got := testutil.ToFloat64(f.metrics.Redelivered); got != 1 {
		t.Fatalf("redelivered %v", got)
	}
	if got := testutil.ToFloat64(f.metrics.Processed); got != 0 {
		t.Fatalf("a redelivery must not be counted again, processed %v", got)
	}
}

func TestMisroutedPaymentLandsInTheAccountsState(t *testing.T) {
	f := start(t)
	// kcat without -K sends no key; other clients may key by something else. State is still per account.
	f.send("", payment("p1", "acct_7", 100, 0))
	f.send("card_9", payment("p2", "acct_7", 100, time.Second))
	st, _ := f.tt.TableValue(detector.Table, "acct_7").(*rules.State)
	if st == nil {
		t.Fatal("no state for acct_7")
	}
	if n, _ := st.Size(); n != 2 {
		t.Fatalf("acct_7 holds %d payments, want 2", n)
	}
	if v := f.tt.TableValue(detector.Table, "card_9"); v != nil {
		t.Fatal("state must not be keyed by the producer's key")
	}
	if got := testutil.ToFloat64(f.metrics.Rerouted); got != 2 {
		t.Fatalf("rerouted %v", got)
	}
}

func TestIdleAccountsExpire(t *testing.T) {
	f := start(t)
	f.send("acct_1", payment("p1", "acct_1", 100, 0))
	*f.clock = now.Add(2 * time.Hour)
	f.send("acct_2", payment("p2", "acct_2", 100, 2*time.Hour))
	// The state reaches back 5m (the window) plus 1h (the default lateness), so acct_1, untouched for two hours, is
	// idle; acct_2 was just touched.
	if _, err := detector.Expire(context.Background(), f.proc, *f.clock); err != nil {
		t.Fatal(err)
	}
	if v := f.tt.TableValue(detector.Table, "acct_1"); v != nil {
		t.Fatal("acct_1 should have expired")
	}
	if v := f.tt.TableValue(detector.Table, "acct_2"); v == nil {
		t.Fatal("acct_2 must be kept")
	}
}

// Without a configured partitioner the detector expects goka's default placement, which goka's own producer uses.
func TestDefaultPlacementIsGokas(t *testing.T) {
	for _, n := range []int32{1, 3, 6, 12, 64} {
		// The partitioner goka's producer uses (goka.ProducerBuilderWithConfig).
		part := sarama.NewCustomHashPartitioner(goka.DefaultHasher())("payments")
		for i := range 2000 {
			key := fmt.Sprint("acct_", i)
			want, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := kafka.Partitioner("").Partition(key, n); got != want {
				t.Fatalf("default placement of %s over %d: %d, sarama's hash partitioner with goka's hasher says %d", key, n, got, want)
			}
		}
	}
}

// runDetector runs a detector with cfg (metrics and a silent log added) on a goka tester until the test ends.
func runDetector(t *testing.T, cfg detector.Config) *fixture {
	t.Helper()
	f := &fixture{tt: tester.New(t), metrics: detector.NewMetrics(nil)}
	cfg.Metrics = f.metrics
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	f.proc, err = detector.New(nil, cfg, goka.WithTester(f.tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	f.alerts = f.tt.NewQueueTracker(string(topics.Alerts))
	f.dlq = f.tt.NewQueueTracker(string(topics.PaymentsDLQ))
	return f
}

type fakeVersions map[int]*rules.Ruleset

func (v fakeVersions) At(int32, int64) *rules.Ruleset { return v[1] }
func (v fakeVersions) Wait(_ context.Context, n int) (*rules.Ruleset, error) {
	if rs, ok := v[n]; ok {
		return rs, nil
	}
	return nil, fmt.Errorf("no version %d", n)
}

// A partition scores with the version in force at its position: the first version until a switch marker, the
// marker's version after it; a payment re-routed through the loop keeps the version its position selected.
func TestVersionSwitchesAtTheMarker(t *testing.T) {
	versions := fakeVersions{}
	for n, limit := range map[int]string{1: "500000", 2: "100000"} {
		rs, err := rules.Parse("v.yaml", []byte("thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big-ticket, type: amount, limit: "+limit+", currency: EUR, score: 60 }\n"))
		if err != nil {
			t.Fatal(err)
		}
		rs.Number = n
		versions[n] = rs
	}
	f := runDetector(t, detector.Config{
		Rules: func() *rules.Ruleset { return versions[2] }, Versions: versions, Partitions: 1,
	})
	tt, m, alerts := f.tt, f.metrics, f.alerts

	tt.Consume(string(topics.Payments), "a1", payment("p1", "a1", 200000, 0)) // 2,000 EUR: under v1's limit
	if _, _, ok := alerts.NextRaw(); ok {
		t.Fatal("version 1 alerted 2,000 EUR")
	}
	tt.Consume(string(topics.Payments), "", []byte(`{"ruleset_version":2}`),
		tester.WithHeaders(goka.Headers{topics.HeaderControl: []byte(topics.ControlRuleset)}))
	tt.Consume(string(topics.Payments), "a2", payment("p2", "a2", 200000, 0))
	_, v, ok := alerts.NextRaw()
	var a topics.Alert
	if !ok || json.Unmarshal(v, &a) != nil || a.PaymentID != "p2" || a.RulesetVersion != 2 {
		t.Fatalf("after the marker: alert %s", v)
	}
	// Re-routed before the switch: its header says version 1, whatever the partition is at now.
	tt.Consume(detector.Loop, "a3", payment("p3", "a3", 200000, 0),
		tester.WithHeaders(goka.Headers{topics.HeaderRulesetVersion: []byte("1")}))
	if _, v, ok := alerts.NextRaw(); ok {
		t.Fatalf("a loop record of version 1 was scored by version 2: %s", v)
	}
	if got := testutil.ToFloat64(m.Switches); got != 1 {
		t.Fatalf("switches %v", got)
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues(rules.ReasonNotJSON)); got != 0 {
		t.Fatal("the marker went to the dead-letter topic")
	}
}

// A rule grouped by device keeps one state per device, beside the accounts': the fourth account on a device
// alerts, whichever partitions the accounts and the device hash to.
func TestRuleGroupedByDevice(t *testing.T) {
	rs, err := rules.Parse("g.yaml", []byte(`
thresholds: { review: 50, block: 80 }
rules:
  - { name: shared-device, type: distinct, by: device_id, field: account_id, window: 1h, limit: 3, score: 50 }
`))
	if err != nil {
		t.Fatal(err)
	}
	f := runDetector(t, detector.Config{
		Rules: func() *rules.Ruleset { return rs }, Partitions: 1,
	})
	tt, alerts := f.tt, f.alerts
	for i, acct := range []string{"a1", "a2", "a3", "a4"} {
		var p rules.Payment
		json.Unmarshal(payment(fmt.Sprint("p", i), acct, 100, time.Duration(i)*time.Minute), &p)
		p.DeviceID = "dev_1"
		b, _ := json.Marshal(p)
		tt.Consume(string(topics.Payments), "", b) // unkeyed, as kcat without -K
	}
	_, v, ok := alerts.NextRaw()
	var a topics.Alert
	if !ok || json.Unmarshal(v, &a) != nil || a.PaymentID != "p3" ||
		a.Rules[0].Reason != "4 distinct account_id values for device_id dev_1 in 1h > limit 3" {
		t.Fatalf("alert %s", v)
	}
	if _, v, ok := alerts.NextRaw(); ok {
		t.Fatalf("second alert %s", v)
	}
	dev, _ := tt.TableValue(detector.Table, "\x00device_id\x00dev_1").(*rules.State)
	if dev == nil {
		t.Fatal("no state for the device")
	}
}

type oneList map[string]bool

func (l oneList) Contains(list, v string) bool { return list == "trusted" && l[v] }

// Shadow rules and allow lists are counted, and neither alerts; entries of the lists topic count like file ones.
func TestShadowRulesAndAllowListsAreCounted(t *testing.T) {
	rs, err := rules.Parse("s.yaml", []byte(`
thresholds: { review: 50, block: 80 }
lists: { trusted: {} }
allow: [ { list: trusted, field: device_id } ]
rules:
  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60 }
  - { name: trial, type: amount, limit: 10, currency: EUR, score: 100, mode: shadow }
`))
	if err != nil {
		t.Fatal(err)
	}
	f := runDetector(t, detector.Config{
		Rules: func() *rules.Ruleset { return rs }, Lists: oneList{"dev_ok": true}, Partitions: 1,
	})
	tt, m, alerts := f.tt, f.metrics, f.alerts

	send := func(id string, amount int64, device string) {
		var p rules.Payment
		json.Unmarshal(payment(id, "a1", amount, 0), &p)
		p.DeviceID = device
		b, _ := json.Marshal(p)
		tt.Consume(string(topics.Payments), "a1", b)
	}
	send("p1", 500, "dev_1") // only the shadow rule fires
	if _, v, ok := alerts.NextRaw(); ok {
		t.Fatalf("a shadow rule alerted: %s", v)
	}
	send("p2", 5000, "dev_ok") // big fires, but the device is trusted
	if _, v, ok := alerts.NextRaw(); ok {
		t.Fatalf("an allow-listed device alerted: %s", v)
	}
	if got := testutil.ToFloat64(m.Shadow.WithLabelValues("trial")); got != 2 {
		t.Fatalf("shadow fires %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.Allowed.WithLabelValues("trusted")); got != 1 {
		t.Fatalf("allowed %v, want 1", got)
	}
}

// With CountOnly (fraudpipe bench --count-only) a payment costs one state read and one table write: nothing is
// decoded, scored, alerted or dead-lettered, and each account's state counts its payments.
func TestCountOnlyScoresNothing(t *testing.T) {
	rs, err := rules.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	f := runDetector(t, detector.Config{Rules: func() *rules.Ruleset { return rs }, Partitions: 1, CountOnly: true})
	tt, m, alerts, dlq, proc := f.tt, f.metrics, f.alerts, f.dlq, f.proc
	tt.Consume(string(topics.Payments), "a1", payment("p1", "a1", 900000, 0)) // over big-ticket's limit
	tt.Consume(string(topics.Payments), "a1", payment("p2", "a1", 100, time.Second))
	tt.Consume(string(topics.Payments), "a1", []byte(`not json`))
	tt.Consume(string(topics.Payments), "a2", payment("p3", "a2", 100, 0))
	if _, _, ok := alerts.NextRaw(); ok {
		t.Error("an alert in count-only mode")
	}
	if _, _, ok := dlq.NextRaw(); ok {
		t.Error("a dead letter in count-only mode")
	}
	if n := testutil.ToFloat64(m.Processed); n != 4 {
		t.Errorf("processed %v, want 4", n)
	}
	// The idle sweep leaves the counts alone: they stand where the time of the last update would.
	if _, err := detector.Expire(context.Background(), proc, now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for acct, want := range map[string]int64{"a1": 3, "a2": 1} {
		st, _ := tt.TableValue(detector.Table, acct).(*rules.State)
		if st == nil || st.Touched != want {
			t.Errorf("%s: state %+v, want a count of %d", acct, st, want)
		}
	}
}

// The processing latency runs from the payment reaching Kafka to its alert, whatever the payment's own timestamp:
// a payment stamped a month ago, produced now, is processed in milliseconds, while the event-time histogram shows
// the month.
func TestProcessingLatencyIsNotEventTime(t *testing.T) {
	f := start(t)
	f.tt.Consume(string(topics.Payments), "acct_1", payment("p1", "acct_1", 600000, -30*24*time.Hour), tester.WithTime(time.Now()))
	f.nextAlert(t)
	if n := testutil.CollectAndCount(f.metrics.Processing); n != 1 {
		t.Fatalf("processing latency has %d series", n)
	}
	var m dto.Metric
	if err := f.metrics.Processing.Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() > 60 {
		t.Fatalf("processing latency %d samples, %v s in all; want one of under a minute", h.GetSampleCount(), h.GetSampleSum())
	}
	if err := f.metrics.Latency.Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() < 29*24*3600 {
		t.Fatalf("event-time latency %v s, want the month", h.GetSampleSum())
	}
}
