package rules

// Engine scores a stream of payments in memory, one state per account and per grouping value, through the same
// steps as the detector (steps.go), each payment as a record of its own. Fixtures and backtests run on it.
type Engine struct {
	rs      *Ruleset
	env     Env
	states  map[string]*State
	records uint64
}

// NewEngine returns an engine with empty state.
func NewEngine(rs *Ruleset, env Env) *Engine {
	return &Engine{rs: rs, env: env, states: map[string]*State{}}
}

func (e *Engine) state(key string) *State {
	st := e.states[key]
	if st == nil {
		st = new(State)
		e.states[key] = st
	}
	return st
}

// Score scores one payment; dup reports a retried payment id, which is not scored. The decision's Late lists the
// earlier-scored payments that this one re-scored, those of other accounts (through grouped rules) last.
func (e *Engine) Score(p *Payment) (d Decision, dup bool) {
	e.records++
	src := e.records
	env := e.env
	var rescores []GroupedRescore
	for _, g := range e.rs.GroupStages(p) {
		step, _, err := e.rs.ScoreAtGroupValue(e.state(g.Key), p, g.Field, src)
		if err != nil {
			panic(err) // the engine stored the step itself moments ago: it always decodes
		}
		if env.Grouped == nil {
			env.Grouped = map[string]string{}
		}
		for name, reason := range step.Outcome {
			env.Grouped[name] = reason
		}
		rescores = append(rescores, step.Rescores...)
	}
	d, del, _ := e.rs.ScoreAtAccount(e.state(p.AccountID), p, env, src)
	if del != First {
		return Decision{}, true
	}
	for _, g := range rescores {
		if as := e.states[g.AccountID]; as != nil {
			if l, ok, _, _ := e.rs.RescoreAtAccount(as, g, e.env, src); ok {
				d.Late = append(d.Late, l)
			}
		}
	}
	return d, false
}
