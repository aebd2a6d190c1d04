package e2e

import (
	"context"
	"fmt"
	"os/exec"
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
