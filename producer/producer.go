// Package producer submits payments to Kafka: from JSON lines (validated first, so a user learns which line is
// wrong and why) or from the synthetic generator.
package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Sender produces records asynchronously and counts acknowledgements. Keys are partitioned with sarama's hash
// partitioner (FNV-1a), the one goka uses, so the detector never has to re-route them.
type Sender struct {
	p      sarama.AsyncProducer
	acked  atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   []error
	done   sync.WaitGroup
}

// NewSender connects a producer with the given config (see kafka.Config.SaramaConfig).
func NewSender(brokers []string, cfg *sarama.Config) (*Sender, error) {
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	s := &Sender{p: p}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		for range p.Successes() {
			s.acked.Add(1)
		}
	}()
	go func() {
		defer s.done.Done()
		for e := range p.Errors() {
			s.failed.Add(1)
			s.mu.Lock()
			if len(s.errs) < 10 {
				s.errs = append(s.errs, e)
			}
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// Send queues one record; it blocks when the producer's buffer is full.
func (s *Sender) Send(ctx context.Context, topic, key string, value []byte) error {
	select {
	case s.p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Acked returns how many records the brokers acknowledged so far.
func (s *Sender) Acked() int64 { return s.acked.Load() }

// Close flushes what is queued and returns an error if any record failed.
func (s *Sender) Close() error {
	// AsyncClose, not Close: Close drains Successes itself and would race the counting goroutine.
	s.p.AsyncClose()
	s.done.Wait()
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
