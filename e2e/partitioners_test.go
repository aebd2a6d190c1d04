package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Each client spreads an account's payments differently. Whatever it does, the account's five payments must meet in
// one state and each fire rapid-fire.
func TestAnyPartitionerKeepsOneStatePerAccount(t *testing.T) {
	p := startPipeline(t)
	// All five payments of an account share a timestamp, so each one's 5-minute window holds all five, whatever
	// order the partitions deliver them in: the first to arrive alerts once the others have (late alerts).
	batch := func(account string) []string {
		var ls []string
		for i := range 5 {
			ls = append(ls, pay(fmt.Sprintf("%s_%d", account, i), account, 100, "EUR", "2026-11-22T10:00:00Z", "DE"))
		}
		return ls
	}

	// murmur2 of the key, as the Java client hashes (franz-go's default partitioner).
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range batch("acct_java") {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "payments", Key: []byte("acct_java"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// sarama with a random partitioner: every payment may land on another partition.
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewRandomPartitioner
	sp, err := sarama.NewSyncProducer([]string{p.brokers}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for _, v := range batch("acct_random") {
		if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: "payments", Key: sarama.StringEncoder("acct_random"), Value: sarama.StringEncoder(v)}); err != nil {
			t.Fatal(err)
		}
	}

	// The Java client itself (Apache Kafka's console producer), with its default partitioner.
	requireTool(t, "java")
	var javaLines []string
	for _, v := range batch("acct_javaclient") {
		javaLines = append(javaLines, "acct_javaclient|"+v)
	}
	jp := exec.Command("bash", "kafka/kafka.sh", "produce", p.brokers, "payments")
	jp.Stdin = strings.NewReader(strings.Join(javaLines, "\n") + "\n")
	if out, err := jp.CombinedOutput(); err != nil {
		t.Fatalf("Java console producer: %v\n%s", err, out)
	}

	// The Python client (kafka-python), with its default partitioner.
	var pyLines []string
	for _, v := range batch("acct_python") {
		pyLines = append(pyLines, "acct_python|"+v)
	}
	pp := exec.Command("bash", "python/python.sh", "produce", p.brokers, "payments")
	pp.Stdin = strings.NewReader(strings.Join(pyLines, "\n") + "\n")
	if out, err := pp.CombinedOutput(); err != nil {
		t.Fatalf("Python producer: %v\n%s", err, out)
	}

	// librdkafka with a key, and without one (random partition per record).
	var keyed []string
	for _, v := range batch("acct_kcat") {
		keyed = append(keyed, "acct_kcat|"+v)
	}
	kcatProduce(t, p.brokers, "payments", true, keyed...)
	kcatProduce(t, p.brokers, "payments", false, batch("acct_nokey")...)

	waitScored(t, p.detMetrics, 30, 60*time.Second)
	newest := map[string]topics.Alert{}
	for _, a := range decodeAlerts(t, kcatConsume(t, p.brokers, "alerts")) {
		newest[a.PaymentID] = a
	}
	per := map[string]int{}
	for _, a := range newest {
		if !strings.HasPrefix(a.Rules[0].Reason, "5 payments in 5m") {
			t.Errorf("%s %s: %s", a.AccountID, a.PaymentID, a.Rules[0].Reason)
		}
		per[a.AccountID]++
	}
	for _, acct := range []string{"acct_java", "acct_javaclient", "acct_python", "acct_random", "acct_kcat", "acct_nokey"} {
		if per[acct] != 5 {
			t.Errorf("%s: %d of its 5 payments alerted with all 5 in their window: its payments were split across states", acct, per[acct])
		}
	}
}

// fiveEach is five payments per account for accounts many accounts, all stamped alike, so that each payment's
// 5-minute window holds its account's five and fires rapid-fire: only when the five met in one state.
func fiveEach(prefix string, accounts int) (keyed []string, plain []string) {
	for a := range accounts {
		account := fmt.Sprintf("%s_%03d", prefix, a)
		for i := range 5 {
			v := pay(fmt.Sprintf("%s_%d", account, i), account, 100, "EUR", "2026-11-22T10:00:00Z", "DE")
			keyed = append(keyed, account+"|"+v)
			plain = append(plain, v)
		}
	}
	return keyed, plain
}

// everyPaymentMetItsAccount checks that all payments alerted with their account's five in the window.
func everyPaymentMetItsAccount(t *testing.T, brokers string, payments int) {
	t.Helper()
	newest := map[string]topics.Alert{}
	for _, a := range decodeAlerts(t, kcatConsume(t, brokers, "alerts")) {
		newest[a.PaymentID] = a
	}
	if len(newest) != payments {
		t.Errorf("%d of %d payments alerted", len(newest), payments)
	}
	for _, a := range newest {
		if len(a.Rules) == 0 || !strings.HasPrefix(a.Rules[0].Reason, "5 payments in 5m") {
			t.Errorf("%s %s: %+v: its account's payments were split across states", a.AccountID, a.PaymentID, a.Rules)
		}
	}
}

// A pipeline placing accounts the way its producer does scores every payment on the partition it arrived on:
// none takes the loop hop (fraudpipe_payments_rerouted_total stays 0), and every account's payments still meet in
// one state. A mismatched producer is re-routed, payment by payment, to the same outcome.
func TestMatchingPartitionerNeedsNoHop(t *testing.T) {
	const accounts = 40
	javaProduce := func(t *testing.T, brokers string, keyed, _ []string) {
		requireTool(t, "java")
		jp := exec.Command("bash", "kafka/kafka.sh", "produce", brokers, "payments")
		jp.Stdin = strings.NewReader(strings.Join(keyed, "\n") + "\n")
		if out, err := jp.CombinedOutput(); err != nil {
			t.Fatalf("Java console producer: %v\n%s", err, out)
		}
	}
	kcat := func(t *testing.T, brokers string, keyed, _ []string) {
		kcatProduce(t, brokers, "payments", true, keyed...)
	}
	ours := func(t *testing.T, brokers string, _, plain []string) {
		f := filepath.Join(t.TempDir(), "payments.jsonl")
		if err := os.WriteFile(f, []byte(strings.Join(plain, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(binary, "produce", "--brokers", brokers, "--file", f).CombinedOutput(); err != nil {
			t.Fatalf("fraudpipe produce: %v\n%s", err, out)
		}
	}
	for _, c := range []struct {
		name, partitioner string
		produce           func(t *testing.T, brokers string, keyed, plain []string)
		hops              bool
	}{
		{"Java client into murmur2 (the default)", "", javaProduce, false},
		{"kcat into crc32", "crc32", kcat, false},
		{"fraudpipe produce into murmur2 (the default)", "", ours, false},
		{"fraudpipe produce into fnv1a", "fnv1a", ours, false},
		{"kcat into murmur2", "murmur2", kcat, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var flags []string
			if c.partitioner != "" {
				flags = []string{"--partitioner", c.partitioner}
			}
			cl := startBrokerWith(t, filepath.Join(dir, "broker"), flags...)
			args := append([]string{"detector", "--brokers", cl.brokers, "--rules", copyRules(t, dir), "--state-dir", filepath.Join(dir, "state"), "--metrics-addr", "127.0.0.1:0"}, flags...)
			det := start(t, "detector", args...)
			det.waitStderr(30*time.Second, "detector started")
			keyed, plain := fiveEach(strings.Fields(c.name)[0], accounts)
			c.produce(t, cl.brokers, keyed, plain)
			addr := det.metricsAddr()
			waitScored(t, addr, len(plain), 60*time.Second)
			rerouted := metric(addr, "fraudpipe_payments_rerouted_total")
			if hops := rerouted > 0; hops != c.hops {
				t.Errorf("%v of %d payments re-routed", rerouted, len(plain))
			}
			everyPaymentMetItsAccount(t, cl.brokers, len(plain))
		})
	}
}

// A detector told to place accounts otherwise than the pipeline's topics record refuses to start, naming both:
// it would split accounts' state. Without the flag it takes the recorded placement.
func TestADetectorWithAnotherPartitionerRefusesToStart(t *testing.T) {
	p := startPipeline(t) // a new pipeline: murmur2
	other := start(t, "detector-crc32", "detector", "--brokers", p.brokers, "--rules", p.rulesPath, "--partitioner", "crc32",
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--metrics-addr", "127.0.0.1:0")
	waitFor(t, 60*time.Second, "the crc32 detector to exit", func() bool {
		select {
		case <-other.done:
			return true
		default:
			return false
		}
	})
	if other.exitErr == nil {
		t.Fatal("the crc32 detector exited cleanly")
	}
	if msg := other.Stderr(); !strings.Contains(msg, "places accounts with partitioner murmur2") || !strings.Contains(msg, "not crc32") {
		t.Fatalf("the refusal does not name both partitioners:\n%s", tail(msg, 2048))
	}
	second := start(t, "detector-2", "detector", "--brokers", p.brokers, "--rules", p.rulesPath,
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--metrics-addr", "127.0.0.1:0")
	second.waitStderr(30*time.Second, "detector started")
}
