package processors

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/lovoo/goka"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Bounds on what a dead letter carries. A dead letter must always fit its topic: one the broker refuses leaves its
// record uncommitted, and the processor fails on it again after every restart. Kafka's default limit on a record
// batch is 1 MiB, the size of the largest record a default producer writes, so an original record can never be
// copied whole: its value keeps its first MaxDeadLetterValue bytes, with the original size and SHA-256 in headers.
const (
	MaxDeadLetterValue = 64 << 10
	maxDeadLetterKey   = 1 << 10
	maxDeadLetterError = 1 << 10
)

// Bounds on an input record's headers; a record beyond them is a header bomb and is dead-lettered unprocessed.
// fraudpipe's own records carry at most a handful of small headers.
const (
	MaxHeaders     = 64
	MaxHeaderBytes = 64 << 10
)

// Source is where a dead-lettered record came from.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
}

// DeadLetter is a dead-lettered record as it is written.
type DeadLetter struct {
	Key     string
	Value   []byte
	Headers goka.Headers
}

// BuildDeadLetter returns the dead letter for a record that could not be processed: its key and value, cut short
// when they are too large for the dead-letter topic, and the reason, error and source in headers.
func BuildDeadLetter(src Source, value []byte, reason string, cause error) DeadLetter {
	msg := reason
	if cause != nil {
		msg = cause.Error()
	}
	h := goka.Headers{
		topics.HeaderReason:          []byte(reason),
		topics.HeaderError:           []byte(cut(msg, maxDeadLetterError)),
		topics.HeaderSourceTopic:     []byte(cut(src.Topic, maxDeadLetterKey)),
		topics.HeaderSourcePartition: []byte(strconv.Itoa(int(src.Partition))),
		topics.HeaderSourceOffset:    []byte(strconv.FormatInt(src.Offset, 10)),
	}
	key := src.Key
	if len(key) > maxDeadLetterKey {
		h[topics.HeaderOriginalKeySize] = []byte(strconv.Itoa(len(key)))
		key = key[:maxDeadLetterKey]
	}
	if len(value) > MaxDeadLetterValue {
		sum := sha256.Sum256(value)
		h[topics.HeaderOriginalSize] = []byte(strconv.Itoa(len(value)))
		h[topics.HeaderOriginalSHA256] = []byte(hex.EncodeToString(sum[:]))
		value = value[:MaxDeadLetterValue]
	}
	return DeadLetter{Key: key, Value: value, Headers: h}
}

// EmitDeadLetter writes the dead letter of the record in ctx to topic, which the group must declare as an output
// with a codec that passes bytes through (topics.Raw). The record's offset is then committed like any other's.
func EmitDeadLetter(ctx goka.Context, topic goka.Stream, value []byte, reason string, cause error) {
	emitDeadLetter(ctx, topic, BuildDeadLetter(Source{Topic: string(ctx.Topic()), Partition: ctx.Partition(),
		Offset: ctx.Offset(), Key: ctx.Key()}, value, reason, cause))
}

func emitDeadLetter(ctx goka.Context, topic goka.Stream, dl DeadLetter) {
	// A nil value would be written as a tombstone, which a dead-letter reader cannot tell from a missing record.
	if dl.Value == nil {
		dl.Value = []byte{}
	}
	ctx.Emit(topic, dl.Key, dl.Value, goka.WithCtxEmitHeaders(dl.Headers))
}

// HeaderBomb returns an error when a record's headers exceed MaxHeaders or MaxHeaderBytes, nil otherwise.
func HeaderBomb(h goka.Headers) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("%d headers, limit %d", len(h), MaxHeaders)
	}
	n := 0
	for k, v := range h {
		n += len(k) + len(v)
	}
	if n > MaxHeaderBytes {
		return fmt.Errorf("%d bytes of headers, limit %d", n, MaxHeaderBytes)
	}
	return nil
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// s[n] is the first byte dropped: while it continues a sequence, that sequence started before n.
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}
