package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// stream is a generated payment stream with the alerts a correct pipeline produces for it.
type stream struct {
	lines []string          // "account|payment JSON" for kcat -K
	want  map[string]string // alert id → summary
}

// generateStream makes count payments and evaluates them with the shipped rules in-process, account by
// account in order: the oracle the pipeline's alerts are compared with after crashes.
func generateStream(t *testing.T, seed uint64, accounts, count int) stream {
	t.Helper()
	rs, err := rules.LoadFile("../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := producer.NewGenerator(seed, accounts, 0.02, time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), time.Hour)
	states := map[string]*rules.State{}
	s := stream{want: map[string]string{}}
	for range count {
		p := g.Next()
		b, _ := json.Marshal(p)
		s.lines = append(s.lines, p.AccountID+"|"+string(b))
		st := states[p.AccountID]
		if st == nil {
			st = new(rules.State)
			states[p.AccountID] = st
		}
		d := rs.Evaluate(st, &p)
		if d.Action != rules.ActionNone {
			a := detector.NewAlert(p, d, rs, time.Time{})
			s.want[a.ID] = summary(a)
		}
		for _, l := range d.Late { // payments stamped at the same millisecond: the newest alert counts
			a := detector.NewAlert(l.Payment, l.Decision, rs, time.Time{})
			s.want[a.ID] = summary(a)
		}
	}
	if len(s.want) < 50 {
		t.Fatalf("the stream has only %d alerts; too few to tell anything", len(s.want))
	}
	return s
}

// checkAlerts waits until the alerts topic holds every expected alert id and then requires it to hold exactly
// those, the newest record of each with the expected decision (an id repeats when re-emitted after a crash, or
// when a late payment raised a payment's alert again).
func checkAlerts(t *testing.T, brokers string, want map[string]string) {
	t.Helper()
	var alerts []topics.Alert
	deadline := time.Now().Add(240 * time.Second)
	lastCount, lastChange, lastReport := -1, time.Now(), time.Now()
	for {
		alerts = decodeAlerts(t, kcatConsume(t, brokers, "alerts"))
		seen := map[string]bool{}
		for _, a := range alerts {
			seen[a.ID] = true
		}
		if len(seen) >= len(want) {
			break
		}
		if len(seen) != lastCount {
			lastCount, lastChange = len(seen), time.Now()
		}
		if time.Since(lastReport) > 10*time.Second {
			t.Logf("%d of %d distinct alerts so far", len(seen), len(want))
			lastReport = time.Now()
		}
		// Give up once nothing has arrived for a minute: a stall, not slowness.
		if time.Now().After(deadline) || time.Since(lastChange) > time.Minute {
			var missing []string
			for id, sum := range want {
				if !seen[id] && len(missing) < 10 {
					missing = append(missing, id+" "+sum)
				}
			}
			t.Fatalf("%d of %d alerts arrived, then none for a minute; missing, for example:\n%s",
				len(seen), len(want), strings.Join(missing, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	newest := map[string]topics.Alert{}
	for _, a := range alerts {
		newest[a.ID] = a
	}
	var wrong []string
	for _, a := range newest {
		w, ok := want[a.ID]
		switch {
		case !ok:
			wrong = append(wrong, "unexpected: "+summary(a))
		case w != summary(a):
			wrong = append(wrong, "got  "+summary(a)+"\nwant "+w)
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d alerts differ from a single uninterrupted evaluation:\n%s", len(wrong), len(alerts),
			strings.Join(wrong[:min(len(wrong), 10)], "\n"))
	}
	t.Logf("%d alert records, %d distinct alerts, all as expected", len(alerts), len(want))
}

func TestDetectorKilledMidStreamLosesAndDoubleCountsNothing(t *testing.T) {
	p := startPipeline(t)
	s := generateStream(t, 7, 2000, 30000)
	kcatProduce(t, p.brokers, "payments", true, s.lines...)

	waitFor(t, 60*time.Second, "the detector to be mid-stream", func() bool {
		return metric(p.detMetrics, "fraudpipe_payments_processed_total") >= 3000
	})
	at := metric(p.detMetrics, "fraudpipe_payments_processed_total")
	p.detector.kill9()
	if at >= float64(len(s.lines)) {
		t.Fatalf("the detector had processed all %v payments before the kill; the test proves nothing", at)
	}
	t.Logf("killed the detector after %v of %d payments", at, len(s.lines))
	p.startDetector(t)

	checkAlerts(t, p.brokers, s.want)
	waitFor(t, 60*time.Second, "one notifier line per alert", func() bool { return len(p.alertLines()) >= len(s.want) })
	logged := map[string]int{}
	for _, l := range p.alertLines() {
		logged[l[strings.Index(l, "alert=")+6:][:30]]++
	}
	for id := range s.want {
		if logged[id] != 1 {
			t.Errorf("alert %s logged %d times, want once", id, logged[id])
		}
	}
	if len(p.alertLines()) != len(s.want) {
		t.Fatalf("notifier logged %d lines for %d alerts", len(p.alertLines()), len(s.want))
	}
}

// TestRunSurvivesKillAndCtrlC runs the all-in-one `fraudpipe run` (embedded broker in the same process) and
// stops it both ways, kill -9 and Ctrl-C: each restart resumes from the data dir with nothing lost or counted
// twice.
func TestRunSurvivesKillAndCtrlC(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	dir := t.TempDir()
	brokers := freeAddr(t)
	alertLog := filepath.Join(dir, "alerts.log")
	rulesPath := copyRules(t, dir)
	var metricsAddr string
	run := func() *proc {
		r := start(t, "run", "run", "--data-dir", filepath.Join(dir, "data"), "--broker-listen", brokers,
			"--rules", rulesPath, "--metrics-addr", "127.0.0.1:0", "--alert-log", alertLog)
		r.waitStderr(30*time.Second, "pipeline running")
		metricsAddr = r.metricsAddr()
		return r
	}
	s := generateStream(t, 11, 1500, 24000)
	half := len(s.lines) / 2

	r := run()
	kcatProduce(t, brokers, "payments", true, s.lines[:half]...)
	waitFor(t, 60*time.Second, "processing to start", func() bool {
		return metric(metricsAddr, "fraudpipe_payments_processed_total") >= 2000
	})
	r.kill9()

	r = run()
	kcatProduce(t, brokers, "payments", true, s.lines[half:]...)
	waitFor(t, 60*time.Second, "processing to resume", func() bool {
		return metric(metricsAddr, "fraudpipe_payments_processed_total") >= 2000
	})
	r.interrupt()

	run()
	checkAlerts(t, brokers, s.want)
	// The notifier ran in the killed process too: a line written just before the kill, whose delivery was not
	// yet recorded, is written again after the restart (the documented at-least-once window). Every alert must
	// be there at least once.
	waitFor(t, 60*time.Second, "every alert in the alert log", func() bool {
		b, _ := os.ReadFile(alertLog)
		for id := range s.want {
			if !strings.Contains(string(b), "alert="+id) {
				return false
			}
		}
		return true
	})
}

// TestLocalStateNeverOutlivesTheBroker wipes the embedded broker's data but keeps the local state: the
// detector must notice (another cluster id), drop the stale state and start afresh instead of failing or
// counting payments that the new broker never saw.
func TestLocalStateNeverOutlivesTheBroker(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	dir := t.TempDir()
	brokers := freeAddr(t)
	args := []string{"run", "--data-dir", filepath.Join(dir, "data"), "--broker-listen", brokers,
		"--rules", "../examples/rules.yaml", "--metrics-addr", "127.0.0.1:0", "--alert-log", filepath.Join(dir, "alerts.log")}
	burst := func(from int) []string {
		var ls []string
		for i := range 4 {
			ls = append(ls, "acct_R|"+pay(fmt.Sprint("r", from+i), "acct_R", 100, "EUR", fmt.Sprintf("2026-11-22T10:00:%02dZ", from+i), "DE"))
		}
		return ls
	}
	r := start(t, "run", args...)
	r.waitStderr(30*time.Second, "pipeline running")
	metricsAddr := r.metricsAddr()
	kcatProduce(t, brokers, "payments", true, burst(0)...) // 4 payments: one short of rapid-fire
	waitScored(t, metricsAddr, 4, 30*time.Second)
	r.interrupt()

	if err := os.RemoveAll(filepath.Join(dir, "data", "kafka")); err != nil {
		t.Fatal(err)
	}
	r = start(t, "run", args...)
	r.waitStderr(30*time.Second, "pipeline running")
	if !strings.Contains(r.Stderr(), "removing local state of another kafka cluster") {
		t.Fatalf("stale state was not noticed:\n%s", r.Stderr())
	}
	metricsAddr = r.metricsAddr()
	kcatProduce(t, brokers, "payments", true, burst(10)...) // 4 more: with stale state counted, rapid-fire would fire
	waitScored(t, metricsAddr, 4, 30*time.Second)
	if n := len(kcatConsume(t, brokers, "alerts")); n != 0 {
		t.Fatalf("%d alerts: payments of the old broker were counted", n)
	}
	// The pipeline is live on the new broker: a fifth payment within five minutes does alert.
	kcatProduce(t, brokers, "payments", true, burst(14)[0])
	waitFor(t, 30*time.Second, "the fifth payment's alert", func() bool { return len(kcatConsume(t, brokers, "alerts")) == 1 })
}
