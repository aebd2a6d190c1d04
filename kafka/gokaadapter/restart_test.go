package gokaadapter

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/kafka"
)

// The producers fraudpipe writes with must not lose a record the broker acknowledged, must write each record once,
// and must keep each key's records in the order they were sent, however often the broker restarts under them:
// that is what a table's changelog, the detector's loop topic and the alerts rely on. Both franz-go setups are
// checked: kafka.Config.ProducerOptions, which the producer command, the rules registry and the dead letters
// write with, and the processors' producer (producer.go), which adds cancellation of writes in flight. It runs on
// the embedded broker, and on Apache Kafka in make e2e-kafka.
func TestProducerKeepsAcknowledgedRecordsAcrossBrokerRestarts(t *testing.T) {
	addr, restart := restartableBroker(t)
	c := kafka.Config{Brokers: []string{addr}, Flush: time.Millisecond, Compression: "lz4", Replication: 1}
	t.Run("franz-go writers", func(t *testing.T) { checkWritesAcrossRestarts(t, c, "writers", restart, franzWriter) })
	t.Run("goka on franz-go", func(t *testing.T) { checkWritesAcrossRestarts(t, c, "goka", restart, gokaWriter) })
}

// A writer sends records to a topic and reports each one's fate: acked with where the broker wrote it, or failed.
type writer func(t *testing.T, c kafka.Config, acked func(value string, partition int32, offset int64), failed func()) (send func(topic, key, value string), close func())

func franzWriter(t *testing.T, c kafka.Config, acked func(string, int32, int64), failed func()) (func(string, string, string), func()) {
	cl, err := c.NewProducer("restart-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return func(topic, key, value string) {
			cl.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}, func(r *kgo.Record, err error) {
				if err != nil {
					failed()
					return
				}
				acked(value, r.Partition, r.Offset)
			})
		}, func() {
			cl.Flush(context.Background())
			cl.Close()
		}
}

func gokaWriter(t *testing.T, c kafka.Config, acked func(string, int32, int64), failed func()) (func(string, string, string), func()) {
	p, err := ProducerBuilder(c, "restart-test", slog.New(slog.DiscardHandler), nil)(c.Brokers, "restart-test", fnv.New32a)
	if err != nil {
		t.Fatal(err)
	}
	return func(topic, key, value string) {
		p.Emit(topic, key, []byte(value)).ThenWithMessage(func(m *sarama.ProducerMessage, err error) {
			if err != nil {
				failed()
				return
			}
			acked(value, m.Partition, m.Offset)
		})
	}, func() { p.Close() }
}

func checkWritesAcrossRestarts(t *testing.T, c kafka.Config, topic string, restart func(), open writer) {
	const (
		records    = 360_000
		keys       = 1000
		partitions = 4
		restarts   = 8
	)
	sc := c.SaramaConfig("restart-test")
	admin, err := sarama.NewClusterAdmin(c.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	type pos struct {
		partition int32
		offset    int64
	}
	var (
		mu     sync.Mutex
		acked  = map[int]pos{} // value → where the broker said it wrote it
		failed int
	)
	send, closeWriter := open(t, c, func(value string, partition int32, offset int64) {
		v, _ := strconv.Atoi(value)
		mu.Lock()
		acked[v] = pos{partition, offset}
		mu.Unlock()
	}, func() {
		// A record may fail while the broker is away; its writer retries or fails over. Only an acknowledged
		// record must be there.
		mu.Lock()
		failed++
		mu.Unlock()
	})
	for i := range records {
		if i > 0 && i%(records/(restarts+1)) == 0 {
			restart()
		}
		send(topic, strconv.Itoa(i%keys), strconv.Itoa(i))
	}
	testenv.WaitFor(t, time.Minute, "every record acknowledged or failed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)+failed == records
	})
	closeWriter()

	client, err := sarama.NewClient(c.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	at := map[pos]int{}      // what the log holds at each position
	last := map[string]int{} // each key's last value in the log
	seen := map[int]bool{}   // values read so far
	var reordered []string   // a key's record written after a newer one of the same key
	var twice []string       // a record written again by a retry
	for part := int32(0); part < partitions; part++ {
		end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := consumer.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			v, _ := strconv.Atoi(string(m.Value))
			at[pos{part, m.Offset}] = v
			// The idempotent producer drops a retry of a batch the broker already wrote.
			if seen[v] {
				twice = append(twice, fmt.Sprintf("%d again at %d/%d", v, part, m.Offset))
			}
			seen[v] = true
			// Never after a newer record of its key (A B A): the loop topic and a changelog hand an account's
			// payments and states on in this order.
			if prev, ok := last[string(m.Key)]; ok && v < prev {
				reordered = append(reordered, fmt.Sprintf("%d after %d at %d/%d", v, prev, part, m.Offset))
			}
			last[string(m.Key)] = v
			if m.Offset+1 >= end {
				break
			}
		}
		pc.Close()
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d records acknowledged, %d failed, %d in the log", len(acked), failed, len(at))
	var lost []string
	newest := map[string]int{} // each key's newest acknowledged value
	for v, ps := range acked {
		if got, ok := at[ps]; !ok || got != v {
			lost = append(lost, fmt.Sprintf("%d (acknowledged at %d/%d, which holds %d)", v, ps.partition, ps.offset, got))
		}
		k := strconv.Itoa(v % keys)
		newest[k] = max(newest[k], v)
	}
	if len(reordered) > 0 {
		t.Errorf("%d records landed after a newer record of their key, e.g. %v", len(reordered), reordered[:min(len(reordered), 3)])
	}
	if len(twice) > 0 {
		t.Errorf("%d records are in the log twice, e.g. %v", len(twice), twice[:min(len(twice), 3)])
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged records are not in the log where the broker put them, e.g. %v", len(lost), lost[:min(len(lost), 3)])
	}
	for k, v := range newest {
		if last[k] < v {
			t.Errorf("key %s: the log ends with %d, older than its acknowledged %d", k, last[k], v)
		}
	}
}

// restartableBroker starts the broker FRAUDPIPE_E2E_BROKER names (the embedded one by default, or Apache Kafka
// through e2e/kafka/kafka.sh, as the e2e suite does) and returns its address and a function that stops and
// restarts it on the same address and data.
func restartableBroker(t *testing.T) (addr string, restart func()) {
	t.Helper()
	dir := t.TempDir()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	addr = free()
	switch kind := os.Getenv("FRAUDPIPE_E2E_BROKER"); kind {
	case "", "embedded":
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		b, err := embedded.StartBroker(dir, addr, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return addr, func() {
			b.Close()
			if b, err = embedded.StartBroker(dir, addr, quiet); err != nil {
				t.Fatal(err)
			}
		}
	case "apache":
		_, port, _ := net.SplitHostPort(addr)
		_, ctrl, _ := net.SplitHostPort(free())
		kafka := func(args ...string) {
			out, err := exec.Command("bash", append([]string{"../../e2e/kafka/kafka.sh"}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("kafka.sh %v: %v\n%s", args, err, out)
			}
		}
		t.Cleanup(func() { exec.Command("bash", "../../e2e/kafka/kafka.sh", "stop", dir).Run() })
		kafka("start", dir, port, ctrl)
		return addr, func() { kafka("stop", dir); kafka("start", dir, port, ctrl) }
	default:
		t.Fatalf("FRAUDPIPE_E2E_BROKER=%q: want embedded or apache", kind)
		return "", nil
	}
}
