// Package detector is the goka group that scores payments. Its callback only translates between goka and the
// rules package: decode, route to the account's partition, deduplicate, evaluate, emit, store.
//
// Delivery: goka marks an input offset only after the callback's emits and table write are acknowledged, so a
// crash redelivers the payments since the last commit. The table write reaches local storage before Kafka
// acknowledges anything, so after a crash the state may already hold a payment whose alert was never sent. The
// state therefore remembers, per recent payment id, which record delivered it and the alert it produced: the
// same record again is a redelivery (re-emit the alert, rewrite the state so the changelog has it too); the same
// payment id from another record is a producer's retry (counted once, no second alert).
package detector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Group is the detector's consumer group; its table holds one rules.State per account.
const Group goka.Group = "detector"

// Table is the detector's compacted group table, and Loop the topic payments are re-routed through.
var (
	Table = goka.GroupTable(Group)
	Loop  = string(Group) + "-loop"
)

// expireVisitor names the visitor that deletes idle accounts' state: goka has no timers, so the detector walks
// its table periodically instead (see Expire).
const expireVisitor = "expire-idle"

// Config is what a detector needs besides the cluster.
type Config struct {
	// Rules returns the newest ruleset. Without Versions it scores every payment, so a reload takes effect at
	// the next one; with Versions it only sets how long idle state is kept.
	Rules func() *rules.Ruleset
	// Versions, when set, makes scoring follow the versioned rulesets of the rules topic (rules/registry): each
	// payments partition switches version at the version's marker.
	Versions Versions
	// Lists adds the lists topic's entries to the rules file's lists; may be nil.
	Lists rules.ListSource
	// Partitions is the partition count of payments (and, copartitioned, of the loop and the table).
	Partitions int32
	// Partitioner is how the processor's writes place keys (gokaadapter.ProducerBuilder): a payment already on its
	// account's partition under it needs no loop hop. "" means goka's default, FNV-1a.
	Partitioner kafka.Partitioner
	Metrics     *Metrics
	Log         *slog.Logger
	// Now is the processing clock (alerts' detected_at, idle expiry); tests set it.
	Now func() time.Time
	// CountOnly is for benchmarks (fraudpipe bench --count-only): nothing is decoded or scored; each payment only
	// reads its account's state and writes it back with a count, so a run measures what goka, the Kafka clients
	// and the store cost without the rules.
	CountOnly bool
	// Guard keeps poison records from stopping the detector (processors.Guard); the Supervisor shares it across
	// restarts. nil: a guard of its own, dead-lettering to payments.dlq.
	Guard *processors.Guard
	// VersionWait bounds how long a record waits for the ruleset version it names (waitVersion). 0: a minute.
	VersionWait time.Duration
	// Decisions writes a topics.Decision for every payment, clean ones included, to the decisions topic.
	Decisions bool
}

// Versions is what the detector needs from the ruleset registry.
type Versions interface {
	// At returns the ruleset in force at an offset of a payments partition, for a partition's first record.
	At(partition int32, offset int64) *rules.Ruleset
	// Wait returns version n, waiting until it is known.
	Wait(ctx context.Context, n int) (*rules.Ruleset, error)
}

type detector struct {
	Config

	mu      sync.Mutex
	current map[int32]position // per payments partition, with Versions
	// looped is the version the last loop record named: nearly every re-routed payment names the same one, and a
	// registered version never changes, so it is returned without a wait (and its timer) per record.
	looped atomic.Pointer[rules.Ruleset]
}

// position is the ruleset a payments partition is at, and the offset it expects next. A record at any other
// offset (the partition came back after another instance had it, or a redelivery went back) looks its version
// up again from the recorded switch offsets instead of trusting what this instance last saw.
type position struct {
	rs   *rules.Ruleset
	next int64
}

// New builds the detector processor. cmd/ and the tests (goka.WithTester) build it through here alike.
func New(brokers []string, cfg Config, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Partitions < 1 {
		return nil, fmt.Errorf("detector: partitions %d", cfg.Partitions)
	}
	if cfg.Guard == nil {
		cfg.Guard = &processors.Guard{Name: string(Group), DeadLetters: topics.PaymentsDLQ, Log: cfg.Log}
	}
	d := &detector{Config: cfg, current: map[int32]position{}}
	g := goka.DefineGroup(Group,
		goka.Input(topics.Payments, topics.Raw{}, cfg.Guard.Wrap(d.process)),
		goka.Loop(topics.Raw{}, cfg.Guard.Wrap(d.process)),
		goka.Output(topics.Alerts, topics.AlertCodec{}),
		goka.Output(topics.Decisions, topics.DecisionCodec{}),
		goka.Output(topics.PaymentsDLQ, topics.Raw{}),
		goka.Visitor(expireVisitor, d.expire),
		goka.Persist(StateCodec{}),
	)
	// Null values reach the guard, which dead-letters them, instead of being dropped without a trace.
	p, err := goka.NewProcessor(brokers, g, append([]goka.ProcessorOption{goka.WithNilHandling(goka.NilProcess)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	return p, nil
}

func (d *detector) process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if ctx.Topic() != topics.Payments && ctx.Headers()[topics.HeaderRescore] != nil {
		d.rescoreGrouped(ctx, raw)
		return
	}
	// Only keyless records can be control records: goka builds a map of a record's headers when asked for them,
	// an allocation per payment otherwise.
	if ctx.Key() == "" && ctx.Topic() == topics.Payments && string(ctx.Headers()[topics.HeaderControl]) == topics.ControlRuleset {
		d.switchVersion(ctx, raw)
		return
	}
	if d.CountOnly {
		d.count(ctx)
		return
	}
	p, err := rules.ParsePayment(raw)
	if err != nil {
		d.deadLetter(ctx, raw, err)
		return
	}
	rs := d.rulesFor(ctx)
	// Rules grouped by another field (device, IP…) need the state of the payment's value of that field, which
	// lives in that key's partition: the payment visits each such key through the loop first (stages), collecting
	// the grouped rules' outcomes, and reaches its account last.
	stages := rs.GroupStages(&p)
	stage, grouped := 0, map[string]string(nil)
	if len(stages) > 0 {
		grouped = map[string]string{}
	}
	if ctx.Topic() != topics.Payments {
		stage, _ = strconv.Atoi(string(ctx.Headers()[topics.HeaderStage]))
		if h := ctx.Headers()[topics.HeaderGrouped]; len(h) > 0 {
			// Decoded into a variable of its own: &grouped would move grouped to the heap on every payment.
			g := grouped
			if err := json.Unmarshal(h, &g); err != nil {
				processors.PanicReject(topics.ReasonBadLoopRecord, fmt.Errorf("loop record with unreadable grouped outcomes: %w", err))
			}
			grouped = g
		}
	}
	if stage < len(stages) && ctx.Topic() != topics.Payments && ctx.Key() == stages[stage].Key {
		d.groupStage(ctx, rs, &p, raw, stages, stage, grouped)
		return
	}
	next := p.AccountID
	if stage < len(stages) {
		next = stages[stage].Key
	}
	// The producer may have keyed or partitioned the payment differently from the pipeline's partitioner. State
	// must live in exactly one partition per account, so such a payment goes through the loop topic, which the
	// processor's writes partition by account id. The ruleset version its position selected travels with it.
	if ctx.Key() != next || ctx.Partition() != d.Partitioner.Partition(next, d.Partitions) {
		d.forward(ctx, rs, next, raw, stage, grouped)
		if next == p.AccountID && len(stages) == 0 {
			d.Metrics.Rerouted.Inc()
		}
		return
	}

	st, _ := ctx.Value().(*rules.State)
	// A failed table read calls goka's Fail, which does not abort the callback once the partition is stopping
	// (a rebalance, a shutdown): Value then returns nil, and scoring against an empty history would be committed.
	stopping(ctx)
	if st == nil {
		st = newState()
	}
	// goka encodes the state when it is set and keeps only the bytes: the next payment may decode into it.
	defer recycleState(st)
	env := rules.Env{Lists: d.Lists}
	if len(stages) > 0 {
		env.Grouped = grouped
	}
	src := rules.SourceID(string(ctx.Topic()), ctx.Partition(), ctx.Offset())
	dec, del, stored := rs.ScoreAtAccount(st, &p, env, src)
	switch del {
	case rules.Redelivered:
		// A crash came before the commit: the first attempt's emits may not have landed. Sending the stored
		// alert again is safe (same id, consumers deduplicate); writing the state again puts it in the
		// changelog if only local storage had it.
		if stored != nil {
			all, err := topics.RestoreAlerts(stored, p)
			if err != nil {
				processors.PanicFail(ctx, err)
			}
			for _, a := range all {
				ctx.Emit(topics.Alerts, p.AccountID, a)
			}
			d.replayLateDecisions(ctx, all)
		}
		ctx.SetValue(st)
		d.replayDecision(ctx, st, &p, rs, stored)
		d.Metrics.Redelivered.Inc()
		return
	case rules.Retried:
		// The producer sent the payment again, maybe because it never learnt the decision: it gets the same one.
		d.replayDecision(ctx, st, &p, rs, stored)
		d.Metrics.Duplicates.Inc()
		return
	}
	now := d.Now()
	d.Metrics.observe(dec)
	if d.Decisions {
		d.emitDecision(ctx, &p, dec.Score, dec.Action, dec.Fired, rs.Number, rs.Digest, now, false)
	}
	if dec.Action != rules.ActionNone {
		a := NewAlert(p, dec, rs, now)
		a.Recent = st.Recent(p.AccountID, p.ID, topics.RecentPayments)
		alert, err := topics.AlertCodec{}.Encode(a)
		if err == nil {
			stored, err = topics.StoredAlert(a)
		}
		if err != nil {
			processors.PanicFail(ctx, fmt.Errorf("encode alert: %w", err))
		}
		ctx.Emit(topics.Alerts, p.AccountID, alert)
		d.Metrics.observeAlert(dec, now.Sub(p.Timestamp))
		if at := arrival(ctx); !at.IsZero() {
			d.Metrics.Processing.Observe(time.Since(at).Seconds())
		}
	}
	if len(dec.Late) > 0 {
		stored = d.emitLate(ctx, rs, p.ID, dec.Late, stored, now)
	}
	if dec.BeyondLateness {
		d.Metrics.BeyondLateness.Inc()
	}
	st.KeepAlerts(stored)
	st.Touched = now.UnixMilli()
	ctx.SetValue(st)
	stopping(ctx) // likewise for a table write that failed
	// Counted once its alert and state are handed to the producer: a payment counted here has every write it causes
	// buffered or acknowledged, so with every payment counted and nothing buffered, all of them are on the broker.
	d.Metrics.Processed.Inc()
}

// emitLate emits the alerts that the late arrival of payment raisedBy raised for earlier-scored payments, and
// returns what to keep for re-emitting them with the payment's own stored alert (own) if it is delivered again.
func (d *detector) emitLate(ctx goka.Context, rs *rules.Ruleset, raisedBy string, late []rules.LateDecision, own []byte, now time.Time) []byte {
	encoded := make([][]byte, 0, len(late))
	for _, l := range late {
		a := NewLateAlert(l, raisedBy, rs, now)
		b, err := topics.AlertCodec{}.Encode(a)
		if err != nil {
			processors.PanicFail(ctx, fmt.Errorf("encode late alert: %w", err))
		}
		ctx.Emit(topics.Alerts, l.Payment.AccountID, b)
		d.emitLateDecision(ctx, &a)
		encoded = append(encoded, b)
		d.Metrics.LateAlerts.WithLabelValues(string(a.Action)).Inc()
	}
	stored, err := topics.StoredAlerts(own, encoded)
	if err != nil {
		processors.PanicFail(ctx, fmt.Errorf("store late alerts: %w", err))
	}
	return stored
}

// emitLateDecision writes the new decision a late alert stands for: the newest decision per payment on the
// decisions topic is then its outcome, as the newest alert per id is. It names no reply address: the API answered
// the first decision long ago.
func (d *detector) emitLateDecision(ctx goka.Context, a *topics.Alert) {
	if !d.Decisions {
		return
	}
	writeDecision(ctx, &topics.Decision{
		PaymentID: a.PaymentID, AccountID: a.AccountID, Decision: topics.OutcomeOf(a.Action), Score: a.Score, Rules: a.Rules,
		RulesetVersion: a.RulesetVersion, RulesetDigest: a.RulesetDigest, DecidedAt: a.DetectedAt, Late: true, RaisedBy: a.RaisedBy,
	}, nil)
}

// replayLateDecisions writes again the late decisions of the late alerts a redelivered record sends again.
func (d *detector) replayLateDecisions(ctx goka.Context, alerts [][]byte) {
	if !d.Decisions {
		return
	}
	for _, b := range alerts {
		var a topics.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			processors.PanicFail(ctx, fmt.Errorf("decode stored late alert: %w", err))
		}
		if a.Late {
			d.emitLateDecision(ctx, &a)
		}
	}
}

// emitDecision writes a payment's decision, addressed to the API instance waiting for it if one is.
func (d *detector) emitDecision(ctx goka.Context, p *rules.Payment, score int, action rules.Action, fired []rules.Fired,
	version int, digest string, now time.Time, replayed bool) {
	writeDecision(ctx, &topics.Decision{
		PaymentID: p.ID, AccountID: p.AccountID, Decision: topics.OutcomeOf(action), Score: score, Rules: fired,
		RulesetVersion: version, RulesetDigest: digest, ArrivedAt: arrival(ctx).UTC(), DecidedAt: now.UTC(), Replayed: replayed,
	}, ctx.Headers()[topics.HeaderReplyTo])
}

// writeDecision writes a decision to the decisions topic, keyed by its account, addressed to the API instance
// replyTo names if it names one.
func writeDecision(ctx goka.Context, dec *topics.Decision, replyTo []byte) {
	b := topics.AppendDecision(make([]byte, 0, 256), dec)
	if len(replyTo) > 0 {
		ctx.Emit(topics.Decisions, dec.AccountID, b, goka.WithCtxEmitHeaders(goka.Headers{topics.HeaderReplyTo: replyTo}))
		return
	}
	ctx.Emit(topics.Decisions, dec.AccountID, b)
}

// replayDecision sends again the decision of a payment delivered again: the outcome the state holds for it, with
// the rules of its kept alert. When the state keeps neither (the payment is long aggregated), it says nothing
// rather than guess: the first decision stands.
func (d *detector) replayDecision(ctx goka.Context, st *rules.State, p *rules.Payment, rs *rules.Ruleset, stored []byte) {
	if !d.Decisions {
		return
	}
	score, action, ok := st.Outcome(p.ID)
	var fired []rules.Fired
	version, digest := rs.Number, rs.Digest
	own, err := topics.StoredOwnAlert(stored)
	if err != nil {
		processors.PanicFail(ctx, err)
	}
	if own != nil {
		fired, version, digest = own.Rules, own.RulesetVersion, own.RulesetDigest
		if !ok {
			score, action, ok = own.Score, own.Action, true
		}
	}
	if ok {
		d.emitDecision(ctx, p, score, action, fired, version, digest, d.Now(), true)
	}
}

// count is a payment's whole processing with CountOnly: one state read, one table write. The count goes in Touched,
// which only the idle sweep reads, and in this mode the sweep deletes nothing (expire).
func (d *detector) count(ctx goka.Context) {
	st, _ := ctx.Value().(*rules.State)
	stopping(ctx)
	if st == nil {
		st = newState()
	}
	st.Touched++
	ctx.SetValue(st)
	recycleState(st)
	d.Metrics.Processed.Inc()
}

// forward sends a payment through the loop to the key of its next stage (a grouping value or its account).
func (d *detector) forward(ctx goka.Context, rs *rules.Ruleset, key string, raw []byte, stage int, grouped map[string]string) {
	h := goka.Headers{
		topics.HeaderRulesetVersion: []byte(strconv.Itoa(rs.Number)),
		topics.HeaderStage:          []byte(strconv.Itoa(stage)),
	}
	if at := arrival(ctx); !at.IsZero() {
		h[topics.HeaderArrived] = strconv.AppendInt(nil, at.UnixMilli(), 10)
	}
	if to := ctx.Headers()[topics.HeaderReplyTo]; len(to) > 0 {
		h[topics.HeaderReplyTo] = to
	}
	if len(grouped) > 0 {
		b, err := json.Marshal(grouped)
		if err != nil {
			processors.PanicFail(ctx, err)
		}
		h[topics.HeaderGrouped] = b
	}
	ctx.Loopback(key, raw, goka.WithCtxEmitHeaders(h))
}

// arrival is when the payment in ctx reached Kafka: its record's timestamp on the payments topic, and for a payment
// re-routed through the loop the one its first record carried (header). Zero when unknown.
func arrival(ctx goka.Context) time.Time {
	if ctx.Topic() != topics.Payments {
		if ms, err := strconv.ParseInt(string(ctx.Headers()[topics.HeaderArrived]), 10, 64); err == nil && ms > 0 {
			return time.UnixMilli(ms)
		}
	}
	return ctx.Timestamp()
}

// groupStage updates the state of one grouping value (ctx's key) and passes the payment on with the outcomes
// of the rules grouped by it. A payment this value has seen before (a redelivery, a retry) is not counted
// again: the outcomes it produced the first time are stored with it and passed on unchanged, and the account
// stage then recognises the payment itself.
func (d *detector) groupStage(ctx goka.Context, rs *rules.Ruleset, p *rules.Payment, raw []byte, stages []rules.GroupStage, stage int, grouped map[string]string) {
	st, _ := ctx.Value().(*rules.State)
	stopping(ctx)
	if st == nil {
		st = newState()
	}
	defer recycleState(st)
	src := rules.SourceID(string(ctx.Topic()), ctx.Partition(), ctx.Offset())
	gs, _, err := rs.ScoreAtGroupValue(st, p, stages[stage].Field, src)
	if err != nil {
		processors.PanicFail(ctx, err)
	}
	outcome := gs.Outcome
	st.Touched = d.Now().UnixMilli()
	ctx.SetValue(st)
	// Earlier-scored payments of this value that the payment's arrival re-scored go to their accounts.
	for _, g := range gs.Rescores {
		b, err := json.Marshal(g)
		if err != nil {
			processors.PanicFail(ctx, fmt.Errorf("encode grouped re-score: %w", err))
		}
		ctx.Loopback(g.AccountID, b, goka.WithCtxEmitHeaders(goka.Headers{
			topics.HeaderRulesetVersion: []byte(strconv.Itoa(rs.Number)),
			topics.HeaderRescore:        []byte("1"),
		}))
	}
	for k, v := range outcome {
		grouped[k] = v
	}
	next := p.AccountID
	if stage+1 < len(stages) {
		next = stages[stage+1].Key
	}
	d.forward(ctx, rs, next, raw, stage+1, grouped)
	stopping(ctx)
}

// rescoreGrouped applies, at a payment's account, the grouped outcomes that a late payment of one of its grouping
// values raised (see groupStage), and emits the late alert if the payment's decision grew. Like a payment, the
// record is remembered, so that a redelivery emits the same alert and nothing else.
func (d *detector) rescoreGrouped(ctx goka.Context, raw []byte) {
	var g rules.GroupedRescore
	if err := json.Unmarshal(raw, &g); err != nil {
		processors.PanicReject(topics.ReasonBadLoopRecord, fmt.Errorf("grouped re-score: %w", err))
	}
	if g.AccountID != ctx.Key() {
		processors.PanicReject(topics.ReasonBadLoopRecord, fmt.Errorf("grouped re-score for account %q keyed %q", g.AccountID, ctx.Key()))
	}
	rs := d.rulesFor(ctx)
	st, _ := ctx.Value().(*rules.State)
	stopping(ctx)
	if st == nil {
		return // the account's state expired: nothing left to re-score
	}
	defer recycleState(st)
	src := rules.SourceID(string(ctx.Topic()), ctx.Partition(), ctx.Offset())
	l, ok, del, stored := rs.RescoreAtAccount(st, g, rules.Env{Lists: d.Lists}, src)
	switch del {
	case rules.Redelivered:
		if stored != nil {
			all, err := topics.RestoreAlerts(stored, rules.Payment{})
			if err != nil {
				processors.PanicFail(ctx, err)
			}
			for _, a := range all {
				ctx.Emit(topics.Alerts, g.AccountID, a)
			}
			d.replayLateDecisions(ctx, all)
			ctx.SetValue(st)
		}
		return
	case rules.Retried:
		return
	}
	if ok {
		st.KeepAlerts(d.emitLate(ctx, rs, g.RaisedBy, []rules.LateDecision{l}, nil, d.Now()))
	}
	ctx.SetValue(st)
	stopping(ctx)
}

// rulesFor returns the ruleset that scores the record in ctx: the one its payments partition is at, or, for a
// payment re-routed through the loop, the version it carries.
func (d *detector) rulesFor(ctx goka.Context) *rules.Ruleset {
	if d.Versions == nil {
		return d.Rules()
	}
	if ctx.Topic() != topics.Payments {
		n, err := strconv.Atoi(string(ctx.Headers()[topics.HeaderRulesetVersion]))
		if err == nil && n == 0 {
			return d.Rules() // forwarded by an unversioned detector
		}
		if err != nil {
			processors.PanicReject(topics.ReasonBadLoopRecord, fmt.Errorf("loop record without a ruleset version: %w", err))
		}
		return d.waitVersion(ctx, n)
	}
	d.mu.Lock()
	pos := d.current[ctx.Partition()]
	d.mu.Unlock()
	rs := pos.rs
	if rs == nil || pos.next != ctx.Offset() {
		if rs = d.Versions.At(ctx.Partition(), ctx.Offset()); rs == nil {
			processors.PanicFail(ctx, errors.New("no ruleset version published yet"))
		}
	}
	d.setCurrent(ctx.Partition(), ctx.Offset(), rs)
	return rs
}

func (d *detector) setCurrent(partition int32, offset int64, rs *rules.Ruleset) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.current[partition].rs; old == nil || old.Number != rs.Number {
		d.Log.Info("ruleset version in force", "partition", partition, "version", rs.Number, "digest", rs.Digest, "from_offset", offset)
	}
	d.current[partition] = position{rs: rs, next: offset + 1}
}

// switchVersion handles a ruleset switch marker: from here on this partition scores with the version it names.
func (d *detector) switchVersion(ctx goka.Context, raw []byte) {
	if d.Versions == nil {
		return // unversioned rules (tests): markers mean nothing
	}
	var m struct {
		RulesetVersion int `json:"ruleset_version"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.RulesetVersion < 1 {
		d.Log.Error("ignoring a malformed ruleset switch marker", "partition", ctx.Partition(), "offset", ctx.Offset(), "err", err)
		return
	}
	d.setCurrent(ctx.Partition(), ctx.Offset(), d.waitVersion(ctx, m.RulesetVersion))
	d.Metrics.Switches.Inc()
}

// stopping aborts the callback, uncommitted, once the partition processor is stopping: whatever goka returned
// during the stop cannot be trusted, and the record is processed again after the rebalance or restart.
func stopping(ctx goka.Context) {
	if err := ctx.Context().Err(); err != nil {
		processors.PanicFail(ctx, fmt.Errorf("partition stopping: %w", err))
	}
}

// deadLetter sends a malformed payment to the dead-letter topic, with the reason in headers (bytes untouched
// unless too large for the topic: processors.BuildDeadLetter). It never counts toward a window and never stops
// the pipeline.
func (d *detector) deadLetter(ctx goka.Context, raw []byte, err error) {
	reason := rules.RejectReason(err)
	processors.EmitDeadLetter(ctx, topics.PaymentsDLQ, raw, reason, err)
	d.Metrics.Rejected.WithLabelValues(reason).Inc()
	d.Log.Warn("payment rejected to dead-letter topic", "reason", reason, "err", err,
		"topic", ctx.Topic(), "partition", ctx.Partition(), "offset", ctx.Offset())
}

// expire deletes an account's state once it has been idle longer than the retention plus a grace period: no
// window of a later payment could reach back to it. meta is the visit's processing time.
func (d *detector) expire(ctx goka.Context, meta any) {
	now, _ := meta.(time.Time)
	st, _ := ctx.Value().(*rules.State)
	if st == nil || d.CountOnly { // CountOnly keeps a count where the last update's time would be
		return
	}
	if st.Idle(now, IdleTTL(d.Rules())) {
		ctx.Delete()
		d.Metrics.Expired.Inc()
	}
	recycleState(st)
}

// IdleTTL is how long an account's state outlives its last update.
func IdleTTL(rs *rules.Ruleset) time.Duration { return rs.Retention + 10*time.Minute }

// Expire visits every account of the partitions this instance owns and deletes the idle ones. It returns how
// many accounts it visited.
func Expire(ctx context.Context, p *goka.Processor, now time.Time) (int64, error) {
	n, err := p.VisitAllWithStats(ctx, expireVisitor, now)
	if err != nil {
		return n, fmt.Errorf("expire idle accounts: %w", err)
	}
	return n, nil
}
