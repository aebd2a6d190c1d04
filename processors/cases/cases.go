// Package cases is the cases group: it turns alerts, customers' answers and analysts' commands into case events
// (package cases at the top level decides them), writes each event to the compacted cases topic and keeps each
// account's case state in its table, which the console reads through a view.
package cases

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	domain "github.com/fraudpipe/fraudpipe/cases"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Group is the cases group; its table holds each account's cases (cases.Account), key = account id.
const Group goka.Group = "cases"

// Table is the group's compacted table.
var Table = goka.GroupTable(Group)

// Codec is the table's codec.
type Codec = topics.JSON[domain.Account]

// Config is what the group needs besides the cluster.
type Config struct {
	Log     *slog.Logger
	Metrics *Metrics
	// Guard keeps unreadable records from stopping the group: they go to topics.CasesDLQ.
	Guard *processors.Guard
}

// Metrics count what the analysts and customers settle.
type Metrics struct {
	// Verdicts counts analysts' verdicts by each rule that fired in the case's alerts.
	Verdicts *prometheus.CounterVec
	// AnswerLatency is how long customers took to answer: the answer's time minus its alert's detection.
	AnswerLatency prometheus.Histogram
	// Commands counts analysts' commands by outcome: applied, repeated, conflict.
	Commands *prometheus.CounterVec
}

// NewMetrics registers the group's metrics with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Verdicts: metrics.CounterVec("fraudpipe_case_verdicts_total",
			"Analysts' verdicts on cases, by verdict and by each rule that fired in the case's alerts.", "rule", "verdict"),
		AnswerLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fraudpipe_confirmation_answer_latency_seconds",
			Help:    "From an alert's detection to the customer's answer about it (first answers on a case).",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 3 * 86400}}),
		Commands: metrics.CounterVec("fraudpipe_case_commands_total",
			"Analysts' case commands by type and outcome (applied, repeated, conflict).", "type", "outcome"),
	}
	if reg != nil {
		reg.MustRegister(m.Verdicts, m.AnswerLatency, m.Commands)
	}
	return m
}

// New builds the cases processor.
func New(brokers []string, cfg Config, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Guard == nil {
		cfg.Guard = &processors.Guard{Name: string(Group), DeadLetters: topics.CasesDLQ, Log: cfg.Log}
	}
	p := &proc{cfg}
	g := goka.DefineGroup(Group,
		goka.Input(topics.Alerts, topics.Raw{}, cfg.Guard.Wrap(p.alert)),
		goka.Input(topics.CustomerAnswers, topics.Raw{}, cfg.Guard.Wrap(p.answer)),
		goka.Input(topics.CaseCommands, topics.Raw{}, cfg.Guard.Wrap(p.command)),
		goka.Output(topics.Cases, topics.JSON[topics.CaseEvent]{}),
		goka.Output(topics.Labels, topics.JSON[topics.Label]{}),
		goka.Output(goka.Stream(cfg.Guard.DeadLetters), topics.Raw{}),
		goka.Persist(Codec{}),
	)
	gp, err := goka.NewProcessor(brokers, g, append([]goka.ProcessorOption{goka.WithNilHandling(goka.NilProcess)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	return gp, nil
}

type proc struct{ Config }

func state(ctx goka.Context) *domain.Account {
	if a, ok := ctx.Value().(*domain.Account); ok && a != nil {
		return a
	}
	return &domain.Account{AccountID: ctx.Key()}
}

// input reads a record of an input as T, rejecting it with reason when it is not one, or belongs to another
// account than its key, and returns it with the account's state. done says the record was handled already: it
// was delivered again after a crash, and its events were written again (replayed).
func input[T any](p *proc, ctx goka.Context, msg any, reason string, account func(*T) string) (v T, st *domain.Account, done bool) {
	if err := json.Unmarshal(msg.([]byte), &v); err != nil {
		processors.PanicReject(reason, fmt.Errorf("%s record: %w", ctx.Topic(), err))
	}
	if got := account(&v); got != ctx.Key() {
		processors.PanicReject(reason, fmt.Errorf("%s record for account %q keyed %q", ctx.Topic(), got, ctx.Key()))
	}
	st = state(ctx)
	return v, st, p.replayed(ctx, st)
}

// from names the record being processed, by which the state recognises a redelivery.
func from(ctx goka.Context) string {
	return fmt.Sprintf("%s/%d/%d", ctx.Topic(), ctx.Partition(), ctx.Offset())
}

// replayed writes again what the record wrote the first time, if the state has seen this very record before:
// goka keeps table writes locally before Kafka acknowledges the record's emits, so after a crash the state may
// remember a record whose events were lost. The events and labels are the same records under the same keys.
func (p *proc) replayed(ctx goka.Context, st *domain.Account) bool {
	events, ok := st.Replay(from(ctx))
	if !ok {
		return false
	}
	for _, e := range events {
		write(ctx, st, e)
	}
	ctx.SetValue(st)
	p.Log.Info("redelivered record: its case events written again", "topic", ctx.Topic(), "offset", ctx.Offset(), "events", len(events))
	return true
}

func (p *proc) alert(ctx goka.Context, msg any) {
	a, st, done := input(p, ctx, msg, topics.ReasonNotAlert, func(a *topics.Alert) string { return a.AccountID })
	if a.ID == "" {
		processors.PanicReject(topics.ReasonNotAlert, errors.New("alert without an id"))
	}
	if done {
		return
	}
	p.emit(ctx, st, domain.OnAlert(st, a, from(ctx)))
}

func (p *proc) answer(ctx goka.Context, msg any) {
	a, st, done := input(p, ctx, msg, topics.ReasonBadAnswer, func(a *topics.CustomerAnswer) string { return a.AccountID })
	if done {
		return
	}
	events, err := domain.OnAnswer(st, a, from(ctx))
	switch {
	case errors.Is(err, domain.ErrBadAnswer):
		processors.PanicReject(topics.ReasonBadAnswer, err)
	case errors.Is(err, domain.ErrRepeated):
		return
	}
	p.emit(ctx, st, events)
}

func (p *proc) command(ctx goka.Context, msg any) {
	c, st, done := input(p, ctx, msg, topics.ReasonBadCaseCommand, func(c *topics.CaseCommand) string { return c.AccountID })
	if done {
		return
	}
	events, err := domain.OnCommand(st, c, from(ctx))
	outcome := "applied"
	switch {
	case errors.Is(err, domain.ErrBadCommand):
		processors.PanicReject(topics.ReasonBadCaseCommand, err)
	case errors.Is(err, domain.ErrRepeated):
		outcome = "repeated"
	case errors.Is(err, domain.ErrConflict):
		outcome = "conflict"
		p.Log.Warn("case command refused", "account", c.AccountID, "case", c.CaseID, "command", c.Type, "by", c.By, "err", err)
	}
	p.Metrics.Commands.WithLabelValues(string(c.Type), outcome).Inc()
	if outcome == "conflict" {
		ctx.SetValue(st) // the command id is remembered: its redelivery is a repeat
	}
	if outcome == "applied" {
		p.emit(ctx, st, events)
	}
}

// emit writes the events to the cases topic, the labels an analyst's verdict gives, and the new state.
func (p *proc) emit(ctx goka.Context, st *domain.Account, events []topics.CaseEvent) {
	for _, e := range events {
		c := write(ctx, st, e)
		if c == nil {
			continue
		}
		switch e.Type {
		case topics.CaseVerdictGiven:
			for _, r := range c.Rules() {
				p.Metrics.Verdicts.WithLabelValues(r, string(e.Verdict)).Inc()
			}
		case topics.CaseCustomerConfirmed, topics.CaseCustomerDenied:
			for _, al := range c.Alerts {
				if al.ID == e.AlertID && !al.DetectedAt.IsZero() {
					p.Metrics.AnswerLatency.Observe(max(0, e.At.Sub(al.DetectedAt)).Seconds())
					break
				}
			}
		}
		p.Log.Info("case event", "case", e.CaseID, "seq", e.Seq, "event", e.Type, "by", e.By)
	}
	// The state changed even without events: an alert or answer is remembered (Seen, Pending).
	ctx.SetValue(st)
}

// write emits a case event, and the labels it gives the case's payments; it returns the event's case.
func write(ctx goka.Context, st *domain.Account, e topics.CaseEvent) *domain.Case {
	ctx.Emit(topics.Cases, topics.CaseEventKey(e.CaseID, e.Seq), &e)
	c := st.Case(e.CaseID)
	if c != nil {
		for _, l := range domain.Labels(c, e) {
			ctx.Emit(topics.Labels, topics.LabelKey(l.AccountID, l.PaymentID), &l)
		}
	}
	return c
}

// OpenCases reports the open cases and the age of the oldest on each scrape, from the table (through a view):
// what the analysts' queue shows, not a count the processor keeps, so every instance reports the same.
type OpenCases struct {
	// Each calls yield with every account's cases.
	Each func(yield func(*domain.Account)) error
	Now  func() time.Time
}

var (
	openDesc   = prometheus.NewDesc("fraudpipe_cases_open", "Open cases, from the cases table.", nil, nil)
	oldestDesc = prometheus.NewDesc("fraudpipe_cases_oldest_open_age_seconds", "Age of the oldest open case (from its first alert); 0 without open cases.", nil, nil)
)

// Describe implements prometheus.Collector.
func (o OpenCases) Describe(ch chan<- *prometheus.Desc) { ch <- openDesc; ch <- oldestDesc }

// Collect implements prometheus.Collector. While the view is not ready it reports nothing rather than zero.
func (o OpenCases) Collect(ch chan<- prometheus.Metric) {
	open, oldest := 0, time.Time{}
	err := o.Each(func(a *domain.Account) {
		if c := a.Current; c != nil && c.Open {
			open++
			if oldest.IsZero() || c.OpenedAt.Before(oldest) {
				oldest = c.OpenedAt
			}
		}
	})
	if err != nil {
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(0, o.Now().Sub(oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(open))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
