package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Three detectors share the partitions in one consumer group; one dies with kill -9 mid-stream. The others take
// over its partitions (restoring its accounts' state from the changelog), and the alerts are exactly those of a
// single uninterrupted evaluation of the same payments: none lost, no payment counted twice.
func TestThreeDetectorsOneKilledMidStream(t *testing.T) {
	p := startPipeline(t) // broker, one detector, notifier
	dets := []*proc{p.detector}
	addrs := []string{p.detMetrics}
	for i := 1; i < 3; i++ {
		d := start(t, fmt.Sprint("detector-", i), "detector", "--brokers", p.brokers, "--rules", p.rulesPath,
			"--state-dir", filepath.Join(t.TempDir(), "state"), "--metrics-addr", "127.0.0.1:0")
		d.waitStderr(30*time.Second, "detector started")
		dets, addrs = append(dets, d), append(addrs, d.metricsAddr())
	}
	// Every instance owns partitions before the stream starts: the group has settled.
	waitFor(t, 60*time.Second, "the three detectors to share the partitions", func() bool {
		for _, a := range addrs {
			if metric(a, "fraudpipe_consumer_lag") < 0 || !hasPartitions(a) {
				return false
			}
		}
		return true
	})

	s := generateStream(t, 21, 2000, 30000)
	kcatProduce(t, p.brokers, "payments", true, s.lines...)
	waitFor(t, 60*time.Second, "the victim to be mid-stream", func() bool {
		return metric(addrs[1], "fraudpipe_payments_processed_total") >= 1000
	})
	at := metric(addrs[1], "fraudpipe_payments_processed_total")
	dets[1].kill9()
	t.Logf("killed detector-1 after it scored %v payments", at)

	// The alerts are the measure: a payment lost would miss or change an alert, one counted twice would change
	// the counts and sums in their reasons.
	checkAlerts(t, p.brokers, s.want)
}

// hasPartitions reports whether an instance reports lag for at least one partition, i.e. it owns some.
func hasPartitions(addr string) bool {
	return strings.Contains(scrape(addr), `fraudpipe_consumer_lag{group="detector"`)
}

// The broker restarts mid-stream: the detector and the notifier recover without operator action, and the alerts
// and the notifier's lines are exactly those of an uninterrupted run. What keeps it so: commits never pass a record
// whose emits failed (kafka/gokaadapter/ordered.go), and a partition's writes land once and in order across the
// restart (kafka/gokaadapter/restart_test.go).
func TestBrokerRestartMidStream(t *testing.T) {
	p := startPipeline(t)
	s := generateStream(t, 33, 1500, 20000)
	half := len(s.lines) / 2
	kcatProduce(t, p.brokers, "payments", true, s.lines[:half]...)
	waitFor(t, 60*time.Second, "the detector to be mid-stream", func() bool {
		return metric(p.detMetrics, "fraudpipe_payments_processed_total") >= 2000
	})
	p.down()
	t.Log("broker stopped")
	p.up()
	t.Log("broker started again")
	kcatProduce(t, p.brokers, "payments", true, s.lines[half:]...)
	checkAlerts(t, p.brokers, s.want)
	waitFor(t, 60*time.Second, "one notifier line per alert", func() bool { return len(p.alertLines()) >= len(s.want) })
	if n := len(p.alertLines()); n != len(s.want) {
		t.Fatalf("notifier logged %d lines for %d alerts", n, len(s.want))
	}
	// The detector's writes waited for the broker to come back rather than failing (a processor's write fails only
	// after two minutes: kafka/gokaadapter/producer.go), and none is left waiting.
	body := scrape(p.detMetrics)
	for _, want := range []string{
		`fraudpipe_producer_failed_writes_total{client="fraudpipe-detector"} 0`,
		`fraudpipe_producer_buffered_records{client="fraudpipe-detector"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("detector metrics lack %q", want)
		}
	}
}
