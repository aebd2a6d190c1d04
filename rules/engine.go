package rules

// Engine scores a stream of payments in memory, one state per account, the way the detector does in Kafka:
// a payment id seen again for the same account (a producer's retry) is not scored twice. Fixtures and
// backtests run on it.
type Engine struct {
	rs     *Ruleset
	env    Env
	states map[string]*State
}

// NewEngine returns an engine with empty state.
func NewEngine(rs *Ruleset, env Env) *Engine {
	return &Engine{rs: rs, env: env, states: map[string]*State{}}
}

// Score scores one payment; dup reports a retried payment id, which is not scored. The decision's Late lists the
// earlier-scored payments of the account that this one re-scored.
func (e *Engine) Score(p *Payment) (d Decision, dup bool) {
	st := e.states[p.AccountID]
	if st == nil {
		st = new(State)
		e.states[p.AccountID] = st
	}
	if _, _, seen := st.Lookup(p.ID); seen {
		return Decision{}, true
	}
	env := e.env
	var rescores []GroupedRescore
	for _, f := range e.rs.GroupFields() {
		key := GroupKey(f, p)
		if key == "" {
			continue
		}
		gs := e.states[key]
		if gs == nil {
			gs = new(State)
			e.states[key] = gs
		}
		if env.Grouped == nil {
			env.Grouped = map[string]string{}
		}
		out, late := e.rs.EvaluateGroup(gs, p, f)
		for name, reason := range out {
			env.Grouped[name] = reason
		}
		rescores = append(rescores, late...)
	}
	d = e.rs.EvaluateWith(st, p, env)
	for _, g := range rescores {
		if as := e.states[g.AccountID]; as != nil {
			if l, ok := e.rs.RescoreGrouped(as, g, e.env); ok {
				d.Late = append(d.Late, l)
			}
		}
	}
	st.Remember(p.ID, 0, nil)
	return d, false
}
