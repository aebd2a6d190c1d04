package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// LogChannel writes one line per alert, readable at a glance:
//
//	level=WARN msg="ALERT block" account=acct_42 payment=pay_123 amount="1,250.50 EUR" score=100
//	rules="big-ticket +60: amount 6,000.00 EUR > limit 5,000.00 EUR; ..." alert=alert_3f… ruleset=9c1e…
//
// The logger masks personal data (see package logging).
type LogChannel struct {
	Log *slog.Logger
}

// Name implements Channel.
func (LogChannel) Name() string { return "log" }

// Deliver implements Channel.
func (c LogChannel) Deliver(ctx context.Context, a *topics.Alert) error {
	level := slog.LevelInfo
	if a.Action == rules.ActionBlock {
		level = slog.LevelWarn
	}
	c.Log.Log(ctx, level, "ALERT "+string(a.Action),
		"account", a.AccountID,
		"payment", a.PaymentID,
		"amount", rules.FormatAmount(a.Payment.Amount, a.Payment.Currency),
		"score", a.Score,
		"rules", FormatRules(a.Rules),
		"alert", a.ID,
		"ruleset", a.RulesetVersion,
	)
	return nil
}

// FormatRules renders fired rules as "name +score: reason; ...".
func FormatRules(fired []rules.Fired) string {
	parts := make([]string, len(fired))
	for i, f := range fired {
		parts[i] = fmt.Sprintf("%s +%d: %s", f.Name, f.Score, f.Reason)
	}
	return strings.Join(parts, "; ")
}
