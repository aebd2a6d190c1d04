package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/interpreter"
)

// Expression rules are CEL (the language Kubernetes uses for validation rules): a boolean expression over the
// payment and the account's aggregates, type-checked when the rules file is loaded. The variables are declared
// one by one with their types, so a misspelt or mistyped name is a load error that names the position, never a
// rule that silently never fires.
//
// Amounts are integers in minor units, like the payment's amount, so `payment.amount > 3 * account.avg_amount_24h`
// type-checks as written. account.* describes the account's payments before this one; money aggregates are in
// the payment's currency (other currencies converted with the file's rates, left out without one).

type exprVar struct {
	name string
	typ  *cel.Type
	doc  string
}

// ExpressionVariables documents what an expression can use; docs/rules.md lists every one of them (a test in
// internal/doccheck holds the two together).
var ExpressionVariables = []exprVar{
	{"payment.id", cel.StringType, "payment id"},
	{"payment.account_id", cel.StringType, "account id"},
	{"payment.amount", cel.IntType, "amount in minor units"},
	{"payment.currency", cel.StringType, "ISO 4217 code"},
	{"payment.timestamp", cel.TimestampType, "the payment's timestamp"},
	{"payment.hour", cel.IntType, "hour of the day of the timestamp, UTC, 0–23"},
	{"payment.merchant_id", cel.StringType, ""},
	{"payment.merchant_category", cel.StringType, ""},
	{"payment.country", cel.StringType, ""},
	{"payment.card_id", cel.StringType, ""},
	{"payment.device_id", cel.StringType, ""},
	{"payment.ip", cel.StringType, ""},
	{"payment.has_location", cel.BoolType, "lat and lon were given"},
	{"payment.lat", cel.DoubleType, "0 without a location"},
	{"payment.lon", cel.DoubleType, "0 without a location"},
	{"account.count_1h", cel.IntType, "payments in the hour before this one"},
	{"account.count_24h", cel.IntType, "payments in the 24 hours before this one"},
	{"account.sum_1h", cel.IntType, "their total, in the payment's currency"},
	{"account.sum_24h", cel.IntType, "their total, in the payment's currency"},
	{"account.avg_amount_24h", cel.IntType, "their average amount (0 when there were none)"},
	{"account.distinct_countries_24h", cel.IntType, "distinct countries in the 24 hours before this one"},
	{"account.payments", cel.IntType, "payments in the account's baseline: all it made stamped before this one, the newest weighted more after 100"},
	{"account.mean_amount", cel.IntType, "baseline mean amount, in the payment's currency"},
	{"account.stddev_amount", cel.IntType, "baseline standard deviation, in the payment's currency"},
	{"account.home_country", cel.StringType, "country of the account's first payment that named one (this payment's, if it is the first)"},
	{"account.last_country", cel.StringType, "country of the previous payment"},
	{"account.seconds_since_last", cel.IntType, "since the previous payment's timestamp; -1 if none"},
	{"account.km_from_last", cel.DoubleType, "distance from the previous payment's location; -1 if unknown"},
}

// ExpressionVariableNames lists the names of ExpressionVariables.
func ExpressionVariableNames() []string {
	names := make([]string, len(ExpressionVariables))
	for i, v := range ExpressionVariables {
		names[i] = v.name
	}
	return names
}

var celEnv = func() *cel.Env {
	opts := make([]cel.EnvOption, 0, len(ExpressionVariables))
	for _, v := range ExpressionVariables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic(fmt.Sprintf("rules: CEL environment: %v", err))
	}
	return env
}()

// exprCostLimit bounds the work of one evaluation, so an expression cannot stall the detector.
const exprCostLimit = 100_000

type expression struct {
	prg  cel.Program
	span time.Duration // how far back its aggregates reach
	// windowed: it reads only the payment and the account's window aggregates, so its outcome is a function of
	// the payments stamped in its windows, and a late arrival re-scores it. One that reads the profile (baseline,
	// home, previous payment) is kept as first decided: the profile summarises the account as it arrived.
	windowed bool
}

// profileVariables are the account.* variables that read the profile rather than a window.
var profileVariables = []string{"account.payments", "account.mean_amount", "account.stddev_amount", "account.home_country",
	"account.last_country", "account.seconds_since_last", "account.km_from_last"}

func compileExpression(src string) (*expression, error) {
	ast, iss := celEnv.Compile(src)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "<input>:", "expr:"))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression is %s, it must be bool", ast.OutputType())
	}
	prg, err := celEnv.Program(ast, cel.CostLimit(exprCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	e := &expression{prg: prg, windowed: true}
	for _, name := range profileVariables {
		if strings.Contains(src, name) {
			e.windowed = false
		}
	}
	// The aggregates reach back 1h or 24h: the state must retain that much.
	switch {
	case strings.Contains(src, "_24h"):
		e.span = 24 * time.Hour
	case strings.Contains(src, "_1h"):
		e.span = time.Hour
	}
	return e, nil
}

func (e *expression) window() time.Duration {
	if e == nil {
		return 0
	}
	return e.span
}

func (e *expression) eval(rs *Ruleset, st *State, p *Payment) (bool, error) {
	// cel-go takes the activation as an interface, which escape analysis cannot see through, so what it points
	// to goes to the heap. The payment it sees is therefore a copy: were it p itself, every caller's payment
	// would be moved to the heap, once per payment, whether the rules have expressions or not.
	pc := *p
	out, _, err := e.prg.Eval(&exprVars{rs: rs, st: st, p: &pc})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	return ok && b, nil
}

// exprVars resolves the variables lazily: an expression that reads only payment.amount costs no window scan.
type exprVars struct {
	rs *Ruleset
	st *State
	p  *Payment
}

var _ interpreter.Activation = (*exprVars)(nil)

func (v *exprVars) Parent() interpreter.Activation { return nil }

func (v *exprVars) ResolveName(name string) (any, bool) {
	p, st := v.p, v.st
	t := p.Timestamp.UnixMilli()
	// Before this payment: (t − window, t), the payment itself excluded.
	count := func(w time.Duration) int64 { return st.count(t-w.Milliseconds(), t-1) }
	sum := func(w time.Duration) int64 { s, _ := v.rs.sum(st, t-w.Milliseconds(), t-1, p.Currency); return s }
	switch name {
	case "payment.id":
		return p.ID, true
	case "payment.account_id":
		return p.AccountID, true
	case "payment.amount":
		return p.Amount, true
	case "payment.currency":
		return p.Currency, true
	case "payment.timestamp":
		return p.Timestamp, true
	case "payment.hour":
		return int64(p.Timestamp.Hour()), true
	case "payment.merchant_id":
		return p.MerchantID, true
	case "payment.merchant_category":
		return p.MerchantCategory, true
	case "payment.country":
		return p.Country, true
	case "payment.card_id":
		return p.CardID, true
	case "payment.device_id":
		return p.DeviceID, true
	case "payment.ip":
		return p.IP, true
	case "payment.has_location":
		return p.Lat != nil, true
	case "payment.lat":
		if p.Lat == nil {
			return 0.0, true
		}
		return *p.Lat, true
	case "payment.lon":
		if p.Lon == nil {
			return 0.0, true
		}
		return *p.Lon, true
	case "account.count_1h":
		return count(time.Hour), true
	case "account.count_24h":
		return count(24 * time.Hour), true
	case "account.sum_1h":
		return sum(time.Hour), true
	case "account.sum_24h":
		return sum(24 * time.Hour), true
	case "account.avg_amount_24h":
		if n := count(24 * time.Hour); n > 0 {
			return sum(24*time.Hour) / n, true
		}
		return int64(0), true
	case "account.distinct_countries_24h":
		return int64(st.distinct(t-(24*time.Hour).Milliseconds(), t-1, FieldCountry, MaxDistinctLimit+1)), true
	case "account.payments":
		return v.rs.baselineBefore(st, t).n, true
	case "account.mean_amount", "account.stddev_amount":
		b := v.rs.baselineBefore(st, t)
		val := b.mean
		if name == "account.stddev_amount" {
			val = b.stddev()
		}
		if b.n == 0 {
			return int64(0), true
		}
		conv, ok := v.rs.convert(int64(math.Round(val)), b.cur, p.Currency)
		if !ok {
			return int64(0), true
		}
		return conv, true
	case "account.home_country":
		if home := st.homeBefore(t); home != "" {
			return home, true
		}
		return p.Country, true // the first payment defines home
	case "account.last_country":
		last, _ := st.previousPlace(t)
		return last.country, true
	case "account.seconds_since_last":
		last, ok := st.previousLocation(t)
		if !ok {
			return int64(-1), true
		}
		return (t - last.ts) / 1000, true
	case "account.km_from_last":
		if lat, lon, ok := locate(p); ok {
			if last, known := st.previousLocation(t); known {
				return distanceKm(last.lat, last.lon, lat, lon), true
			}
		}
		return -1.0, true
	}
	return nil, false
}
