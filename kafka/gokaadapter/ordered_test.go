package gokaadapter

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kfake"
)

// markAllBut consumes want records, marks every one except skip (out of order, as goka's acks arrive), commits
// and ends the session. It records the offsets it was handed.
type markAllBut struct {
	want int
	skip int64
	got  []int64
}

func (h *markAllBut) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *markAllBut) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *markAllBut) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	var msgs []*sarama.ConsumerMessage
	for m := range c.Messages() {
		h.got = append(h.got, m.Offset)
		msgs = append(msgs, m)
		if len(msgs) == h.want {
			break
		}
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Offset != h.skip {
			s.MarkMessage(msgs[i], "")
		}
	}
	s.Commit()
	return errStop
}

var errStop = errors.New("stop")

func committed(t *testing.T, addrs []string, group string) int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(addrs, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	res, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{"in": {0}})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetBlock("in", 0).Offset
}

func consumeOnce(t *testing.T, build goka.ConsumerGroupBuilder, addrs []string, group string, h *markAllBut) {
	t.Helper()
	cg, err := build(addrs, group, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for range cg.Errors() {
		}
	}()
	// The handler's error ends the claim, which ends the session; Consume then returns.
	if err := cg.Consume(ctx, []string{"in"}, h); err != nil && !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	if len(h.got) != h.want {
		t.Fatalf("consumed %v, want %d records", h.got, h.want)
	}
}

// A record that is never marked (its emits failed) holds the group's offset back, however many records after it
// are marked; the next session consumes it again. Without the gate, the same marks commit past it.
func TestOrderedCommitNeverPassesAnUnmarkedRecord(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()

	pc := sarama.NewConfig()
	pc.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(addrs, pc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "in", Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()

	cfg := func() *sarama.Config {
		sc := sarama.NewConfig()
		sc.Version = sarama.V3_0_0_0
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
		return sc
	}

	// Control: sarama's own cumulative commit skips the unmarked record 1.
	consumeOnce(t, goka.ConsumerGroupBuilderWithConfig(cfg()), addrs, "plain", &markAllBut{want: 5, skip: 1})
	if got := committed(t, addrs, "plain"); got != 5 {
		t.Fatalf("plain group committed %d, expected the cumulative commit to reach 5", got)
	}

	ordered := orderedGroupBuilder(cfg())
	consumeOnce(t, ordered, addrs, "ordered", &markAllBut{want: 5, skip: 1})
	if got := committed(t, addrs, "ordered"); got != 1 {
		t.Fatalf("ordered group committed %d, want 1: only record 0 is done in order", got)
	}
	again := &markAllBut{want: 4, skip: -1}
	consumeOnce(t, ordered, addrs, "ordered", again)
	if again.got[0] != 1 {
		t.Fatalf("second session started at %d, want the unmarked record 1", again.got[0])
	}
	if got := committed(t, addrs, "ordered"); got != 5 {
		t.Fatalf("ordered group committed %d after marking everything, want 5", got)
	}
}

func TestCommitGateAdvancesOverContiguousMarks(t *testing.T) {
	g := &commitGate{marked: map[int64]struct{}{}}
	// Gaps, as after compaction; 11 twice, as sarama hands on a record again after a timed-out hand-off.
	for _, o := range []int64{10, 11, 11, 13, 20} {
		g.dispatched(o)
	}
	steps := []struct {
		mark    int64
		next    int64
		advance bool
	}{
		{13, 0, false},
		{11, 0, false},
		{10, 14, true}, // 10, 11 and 13 are done
		{20, 21, true},
	}
	for _, s := range steps {
		next, adv := g.mark(s.mark)
		if next != s.next || adv != s.advance {
			t.Fatalf("mark(%d) = %d,%v, want %d,%v", s.mark, next, adv, s.next, s.advance)
		}
	}
	if len(g.marked) != 0 {
		t.Fatalf("gate still holds %v", g.marked)
	}
}
