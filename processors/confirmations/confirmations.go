// Package confirmations is the customer confirmation saga's processor: it turns customers' answers to "Was this
// you?" links into commands for the payment service, each alert's once (confirm.Decide).
package confirmations

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Group is the saga's consumer group; its table holds each account's answered alerts (confirm.Answered).
const Group goka.Group = "confirmations"

// Table is the group's compacted table.
var Table = goka.GroupTable(Group)

// Config is what the saga needs besides the cluster.
type Config struct {
	Log *slog.Logger
	// Now is the clock of the commands' issued_at; tests set it.
	Now     func() time.Time
	Metrics *Metrics
	// Guard keeps unreadable answers from stopping the group: they go to DeadLetters.
	Guard *processors.Guard
}

// Metrics count the answers by answer and outcome.
type Metrics struct {
	Answers *prometheus.CounterVec
}

// NewMetrics registers the saga's metrics with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Answers: metrics.CounterVec("fraudpipe_customer_answers_total",
		"Customers' answers to confirmation links, by answer and outcome (first, repeated, conflicts).", "answer", "outcome")}
	if reg != nil {
		reg.MustRegister(m.Answers)
	}
	return m
}

// New builds the saga processor.
func New(brokers []string, cfg Config, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Guard == nil {
		cfg.Guard = &processors.Guard{Name: string(Group), DeadLetters: topics.CustomerAnswersDLQ, Log: cfg.Log}
	}
	s := &saga{cfg}
	g := goka.DefineGroup(Group,
		goka.Input(topics.CustomerAnswers, topics.Raw{}, cfg.Guard.Wrap(s.answer)),
		goka.Output(topics.PaymentActions, topics.JSON[topics.PaymentCommand]{}),
		goka.Output(topics.Labels, topics.JSON[topics.Label]{}),
		goka.Output(goka.Stream(cfg.Guard.DeadLetters), topics.Raw{}),
		goka.Persist(topics.JSON[confirm.Answered]{}),
	)
	p, err := goka.NewProcessor(brokers, g, append([]goka.ProcessorOption{goka.WithNilHandling(goka.NilProcess)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("confirmations: %w", err)
	}
	return p, nil
}

type saga struct{ Config }

func (s *saga) answer(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	var a topics.CustomerAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		processors.PanicReject(topics.ReasonBadAnswer, fmt.Errorf("customer answer: %w", err))
	}
	if a.AccountID != ctx.Key() {
		processors.PanicReject(topics.ReasonBadAnswer, fmt.Errorf("customer answer for account %q keyed %q", a.AccountID, ctx.Key()))
	}
	st, _ := ctx.Value().(*confirm.Answered)
	if st == nil {
		st = &confirm.Answered{}
	}
	cmds, outcome, err := confirm.Decide(st, a, s.Now())
	if err != nil {
		processors.PanicReject(topics.ReasonBadAnswer, err)
	}
	for _, c := range cmds {
		ctx.Emit(topics.PaymentActions, a.AccountID, &c)
	}
	if outcome == confirm.First {
		// The customer's answer is also what the rules are measured against (rules backtest --labels).
		ctx.Emit(topics.Labels, topics.LabelKey(a.AccountID, a.PaymentID), confirm.LabelOf(a))
		ctx.SetValue(st)
	}
	if s.Metrics != nil {
		s.Metrics.Answers.WithLabelValues(string(a.Answer), string(outcome)).Inc()
	}
	s.Log.Info("customer answer", "account", a.AccountID, "alert", a.AlertID, "answer", a.Answer, "outcome", outcome, "commands", len(cmds))
}
