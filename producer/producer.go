// Package producer submits payments to Kafka: from JSON lines (validated first, so a user learns which line is
// wrong and why) or from the synthetic generator.
package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// maxUnacked bounds the records sent and not yet acknowledged, franz-go's default buffer.
const maxUnacked = 10_000

// Sender produces records asynchronously and counts acknowledgements. Keys go where the pipeline's processors
// place them (kafka.Config.Placement), so the detector never has to re-route them.
type Sender struct {
	client  *kgo.Client
	unacked chan struct{} // a slot per record not yet acknowledged or failed
	pending sync.WaitGroup
	acked   atomic.Int64
	failed  atomic.Int64
	mu      sync.Mutex
	errs    []error
}

// NewSender returns a sender on the cluster's producer settings (kafka.Config.ProducerOptions); it connects on
// its first record.
func NewSender(cfg kafka.Config, clientID string, log *slog.Logger) (*Sender, error) {
	client, err := cfg.NewProducer(clientID, log, kgo.MaxBufferedRecords(maxUnacked))
	if err != nil {
		return nil, err
	}
	return &Sender{client: client, unacked: make(chan struct{}, maxUnacked)}, nil
}

// Send queues one record; it blocks while maxUnacked records wait for their acknowledgement. A queued record is
// written even if ctx ends later: Close waits for it.
func (s *Sender) Send(ctx context.Context, topic, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err // even with a slot free, which select might pick
	}
	select {
	case s.unacked <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.pending.Add(1)
	s.client.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}, s.done)
	return nil
}

// done counts a record's outcome; franz-go calls it once per record, one call at a time.
func (s *Sender) done(_ *kgo.Record, err error) {
	if err == nil {
		s.acked.Add(1)
	} else {
		s.failed.Add(1)
		s.mu.Lock()
		if len(s.errs) < 10 {
			s.errs = append(s.errs, err)
		}
		s.mu.Unlock()
	}
	<-s.unacked
	s.pending.Done()
}

// Acked returns how many records the brokers acknowledged so far.
func (s *Sender) Acked() int64 { return s.acked.Load() }

// Close flushes what is queued and returns an error if any record failed.
func (s *Sender) Close() error {
	s.client.Flush(context.Background()) // returns once every queued record is acknowledged or failed
	s.pending.Wait()                     // and its outcome counted
	s.client.Close()
	if n := s.failed.Load(); n > 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return fmt.Errorf("%d records failed: %w", n, errors.Join(s.errs...))
	}
	return nil
}

// Rejected is a line that was not sent.
type Rejected struct {
	Line int
	Err  error
}

// SendLines validates and sends every JSON line of r as a payment; blank lines are skipped. It returns how many
// it queued and the lines it rejected, with the reason.
func SendLines(ctx context.Context, s *Sender, topic string, r io.Reader) (sent int, rejected []Rejected, err error) {
	return sendLines(ctx, s, topic, r, func(b []byte) (string, error) {
		p, err := rules.ParsePayment(b)
		return p.AccountID, err
	})
}

// SendCustomerLines validates and sends every JSON line of r as a customer record, keyed by account id.
func SendCustomerLines(ctx context.Context, s *Sender, r io.Reader) (sent int, rejected []Rejected, err error) {
	return sendLines(ctx, s, string(topics.Customers), r, func(b []byte) (string, error) {
		c, err := topics.ParseCustomer(b)
		if err != nil {
			return "", err
		}
		return c.AccountID, nil
	})
}

func sendLines(ctx context.Context, s *Sender, topic string, r io.Reader, key func([]byte) (string, error)) (sent int, rejected []Rejected, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 || isBlank(b) {
			continue
		}
		k, perr := key(b)
		if perr != nil {
			rejected = append(rejected, Rejected{Line: line, Err: perr})
			continue
		}
		if err := s.Send(ctx, topic, k, append([]byte(nil), b...)); err != nil {
			return sent, rejected, err
		}
		sent++
	}
	if err := sc.Err(); err != nil {
		return sent, rejected, fmt.Errorf("read line %d: %w", line+1, err)
	}
	return sent, rejected, nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// Encode is the JSON form of a payment on the payments topic: the members of rules.Payment's json tags, in
// that order, empty optional ones left out, the timestamp in RFC 3339 with nanoseconds.
//
// It appends the members itself rather than through encoding/json, whose reflection made encoding the larger
// half of the generator's cost; the bench's generator shares two cores with the detector it measures. A test
// holds it to encoding/json's output for the same payments.
func Encode(p rules.Payment) []byte {
	b := make([]byte, 0, 256)
	b = appendMember(b, `{"id":`, p.ID)
	b = appendMember(b, `,"account_id":`, p.AccountID)
	b = strconv.AppendInt(append(b, `,"amount":`...), p.Amount, 10)
	b = appendMember(b, `,"currency":`, p.Currency)
	b = append(p.Timestamp.AppendFormat(append(b, `,"timestamp":"`...), time.RFC3339Nano), '"')
	for _, m := range [...]struct{ name, value string }{
		{`,"merchant_id":`, p.MerchantID}, {`,"merchant_category":`, p.MerchantCategory},
		{`,"country":`, p.Country}, {`,"card_id":`, p.CardID}, {`,"device_id":`, p.DeviceID}, {`,"ip":`, p.IP},
	} {
		if m.value != "" {
			b = appendMember(b, m.name, m.value)
		}
	}
	if p.Lat != nil {
		b = appendFloat(append(b, `,"lat":`...), *p.Lat)
	}
	if p.Lon != nil {
		b = appendFloat(append(b, `,"lon":`...), *p.Lon)
	}
	return append(b, '}')
}

// appendMember appends a name (with its separator and colon) and a string value. Printable ASCII without quotes
// or backslashes, which ids, codes and IPs are, is copied as it is; anything else goes through
// jsontext.AppendQuote, where invalid UTF-8 becomes U+FFFD as in encoding/json, so its error is ignored.
func appendMember(b []byte, name, value string) []byte {
	b = append(b, name...)
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b, _ = jsontext.AppendQuote(b, value)
			return b
		}
	}
	b = append(b, '"')
	b = append(b, value...)
	return append(b, '"')
}

// appendFloat formats a number as encoding/json does: the shortest exact form, with an exponent only for very
// small or large magnitudes, and "e-7" rather than "e-07".
func appendFloat(b []byte, f float64) []byte {
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}
