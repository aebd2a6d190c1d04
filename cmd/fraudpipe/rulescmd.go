package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/rules/registry"
	"github.com/fraudpipe/fraudpipe/topics"
)

// rulesCommand groups what a rules author does: check and test a file offline, see what it would change, replay
// traffic through it, publish it, and move between published versions.
func rulesCommand() *ffcli.Command {
	return &ffcli.Command{
		Name: "rules", ShortUsage: "fraudpipe rules <check|test|plan|backtest|push|list|show|rollback> ...",
		ShortHelp: "Validate, test, backtest and publish versioned rulesets.",
		Subcommands: []*ffcli.Command{
			rulesCheck(), rulesTest(), rulesPlan(), rulesBacktest(), rulesPush(), rulesList(), rulesShow(), rulesRollback(),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

// clusterFlags are the flags of the rules subcommands that talk to Kafka.
type clusterFlags struct {
	kafka kafkaFlags
	log   logFlags
}

func (c *clusterFlags) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("fraudpipe rules "+name, flag.ContinueOnError)
	c.kafka.register(fs, defaultBrokers, "Kafka brokers (host:port,...)")
	c.log.register(fs)
	return fs
}

// registry connects, makes sure the topics exist and returns a registry that has read every version.
func (c *clusterFlags) registry(ctx context.Context) (*registry.Registry, kafka.Config, func(), error) {
	log, err := c.log.logger(os.Stderr)
	if err != nil {
		return nil, kafka.Config{}, nil, err
	}
	k := c.kafka.config()
	if err := k.Validate(); err != nil {
		return nil, k, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := k.WaitForCluster(wctx, log); err != nil {
		return nil, k, nil, err
	}
	if err := k.EnsureTopics(wctx, pipelineTopics()); err != nil {
		return nil, k, nil, err
	}
	reg := registry.New(k, log)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { reg.Run(rctx); close(done) }()
	if err := reg.WaitReady(wctx); err != nil {
		stop()
		return nil, k, nil, err
	}
	return reg, k, func() { stop(); <-done }, nil
}

func rulesCheck() *ffcli.Command {
	return &ffcli.Command{
		Name: "check", ShortUsage: "fraudpipe rules check FILE...",
		ShortHelp: "Validate rules files; every problem is named with file, line, rule and field.",
		Exec: func(_ context.Context, files []string) error {
			if len(files) == 0 {
				return flag.ErrHelp
			}
			failed := false
			for _, f := range files {
				rs, err := rules.LoadFile(f)
				if err != nil {
					failed = true
					for _, line := range strings.Split(err.Error(), "\n") {
						fmt.Println(line)
					}
					continue
				}
				fmt.Printf("%s: ok, %d rules, lateness %s, retention %s, digest %s\n", f, len(rs.Rules), rules.FormatDuration(rs.Lateness), rules.FormatDuration(rs.Retention), rs.Digest)
			}
			if failed {
				return errors.New("invalid rules")
			}
			return nil
		},
	}
}

func rulesTest() *ffcli.Command {
	fs := flag.NewFlagSet("fraudpipe rules test", flag.ContinueOnError)
	fixtures := fs.String("fixtures", "", "fixtures file (default: FILE with .test.yaml for .yaml)")
	return &ffcli.Command{
		Name: "test", ShortUsage: "fraudpipe rules test [--fixtures F] FILE", FlagSet: fs,
		ShortHelp: "Run the fixtures beside a rules file: sample payments and the alerts they must raise.",
		Exec: func(_ context.Context, args []string) error {
			if len(args) != 1 {
				return flag.ErrHelp
			}
			return runFixtures(os.Stdout, args[0], *fixtures)
		},
	}
}

func runFixtures(w io.Writer, rulesPath, fixturesPath string) error {
	rs, err := rules.LoadFile(rulesPath)
	if err != nil {
		return err
	}
	if fixturesPath == "" {
		fixturesPath = rules.FixturesPath(rulesPath)
	}
	f, err := rules.LoadFixtures(fixturesPath)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range rules.RunFixtures(rs, f) {
		if len(r.Diff) == 0 {
			fmt.Fprintf(w, "ok    %s\n", r.Name)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %s\n", r.Name)
		for _, d := range r.Diff {
			fmt.Fprintf(w, "        %s\n", d)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s: %d of %d cases failed: %w", fixturesPath, failed, len(f.Cases), rules.ErrFixturesFailed)
	}
	fmt.Fprintf(w, "%s: all %d cases pass\n", fixturesPath, len(f.Cases))
	return nil
}

func rulesPlan() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("plan")
	return &ffcli.Command{
		Name: "plan", ShortUsage: "fraudpipe rules plan [flags] FILE", FlagSet: fs, Options: envOptions,
		ShortHelp: "Show what publishing FILE would change against the live ruleset.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return flag.ErrHelp
			}
			rs, err := rules.LoadFile(args[0])
			if err != nil {
				return err
			}
			reg, _, closeReg, err := c.registry(ctx)
			if err != nil {
				return err
			}
			defer closeReg()
			latest, live, ok := reg.Latest()
			if !ok {
				fmt.Printf("no version published yet; pushing %s would publish version 1\n", args[0])
			} else {
				fmt.Printf("live: version %d (digest %s); %s: digest %s\n", latest.Version, latest.Digest, args[0], rs.Digest)
			}
			fmt.Print(rules.Diff(live, rs).String())
			if live != nil && rs.Retention > live.Retention {
				fmt.Printf("note: state retention grows from %s to %s: windows reaching further back than %s are accurate only for payments from the switch on plus the new retention; until then they count only what the old retention kept\n",
					rules.FormatDuration(live.Retention), rules.FormatDuration(rs.Retention), rules.FormatDuration(live.Retention))
			}
			return nil
		},
	}
}

func rulesPush() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("push")
	comment := fs.String("comment", "", "why this version (shown by rules list)")
	return &ffcli.Command{
		Name: "push", ShortUsage: "fraudpipe rules push [flags] FILE", FlagSet: fs, Options: envOptions,
		ShortHelp: "Publish FILE as the next ruleset version; every detector switches to it at a defined point.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return flag.ErrHelp
			}
			rs, err := rules.LoadFile(args[0])
			if err != nil {
				return fmt.Errorf("refused, nothing published: %w", err)
			}
			reg, k, closeReg, err := c.registry(ctx)
			if err != nil {
				return err
			}
			defer closeReg()
			v, changed, err := reg.Push(ctx, k, rs.Bundle, registry.Meta{Author: author(), Comment: *comment})
			if err != nil {
				return err
			}
			if !changed {
				fmt.Printf("unchanged: version %d already has this content (digest %s)\n", v.Version, v.Digest)
				return nil
			}
			fmt.Printf("published version %d (digest %s); switch markers at %s\n", v.Version, v.Digest, effective(v))
			return nil
		},
	}
}

func effective(v registry.Version) string {
	parts := make([]string, 0, len(v.Effective))
	for _, p := range slices.Sorted(func(yield func(int32) bool) {
		for p := range v.Effective {
			if !yield(p) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("payments/%d@%d", p, v.Effective[p]))
	}
	if len(parts) == 0 {
		return "(none yet)"
	}
	return strings.Join(parts, " ")
}

func rulesList() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("list")
	return &ffcli.Command{
		Name: "list", ShortUsage: "fraudpipe rules list [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "List the published ruleset versions, newest last.",
		Exec: func(ctx context.Context, _ []string) error {
			reg, _, closeReg, err := c.registry(ctx)
			if err != nil {
				return err
			}
			defer closeReg()
			w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tCREATED\tAUTHOR\tDIGEST\tRULES\tCOMMENT")
			for _, v := range reg.List() {
				_, rs, _ := reg.Get(v.Version)
				note := v.Comment
				if v.RolledBackFrom > 0 {
					note = fmt.Sprintf("%s (content of version %d)", note, v.RolledBackFrom)
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\n", v.Version, v.CreatedAt.Format(time.RFC3339), v.Author, v.Digest, len(rs.Rules), note)
			}
			return w.Flush()
		},
	}
}

// versionArg reads the one VERSION argument of show and rollback ("3" or "v3").
func versionArg(args []string) (int, error) {
	if len(args) != 1 {
		return 0, flag.ErrHelp
	}
	n, err := strconv.Atoi(strings.TrimPrefix(args[0], "v"))
	if err != nil {
		return 0, fmt.Errorf("version %q: want a number", args[0])
	}
	return n, nil
}

func rulesShow() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("show")
	return &ffcli.Command{
		Name: "show", ShortUsage: "fraudpipe rules show [flags] VERSION", FlagSet: fs, Options: envOptions,
		ShortHelp: "Print a published version's rules file (and name its list files).",
		Exec: func(ctx context.Context, args []string) error {
			n, err := versionArg(args)
			if err != nil {
				return err
			}
			reg, _, closeReg, err := c.registry(ctx)
			if err != nil {
				return err
			}
			defer closeReg()
			v, _, ok := reg.Get(n)
			if !ok {
				return fmt.Errorf("no ruleset version %d", n)
			}
			fmt.Printf("# version %d, %s by %s, digest %s, from %s\n", v.Version, v.CreatedAt.Format(time.RFC3339), v.Author, v.Digest, v.Bundle.Name)
			for name, data := range v.Bundle.Files {
				fmt.Printf("# list file %s: %d lines\n", name, strings.Count(string(data), "\n"))
			}
			os.Stdout.Write(v.Bundle.Data)
			return nil
		},
	}
}

func rulesRollback() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("rollback")
	comment := fs.String("comment", "", "why (default: rollback to version N)")
	return &ffcli.Command{
		Name: "rollback", ShortUsage: "fraudpipe rules rollback [flags] VERSION", FlagSet: fs, Options: envOptions,
		ShortHelp: "Publish an earlier version's content again, as the next version.",
		Exec: func(ctx context.Context, args []string) error {
			n, err := versionArg(args)
			if err != nil {
				return err
			}
			reg, k, closeReg, err := c.registry(ctx)
			if err != nil {
				return err
			}
			defer closeReg()
			v, err := reg.Rollback(ctx, k, n, registry.Meta{Author: author(), Comment: *comment})
			if err != nil {
				return err
			}
			fmt.Printf("published version %d with the content of version %d (digest %s); switch markers at %s\n", v.Version, n, v.Digest, effective(v))
			return nil
		},
	}
}

func rulesBacktest() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("backtest")
	payments := fs.String("payments", "", "JSON-lines file of payments to replay (default: the payments topic)")
	from := fs.String("from", "", "with the payments topic: replay from this time (RFC 3339, or a duration back such as 24h); default: all it retains")
	live := fs.String("live", "", "the ruleset to compare with: a rules file, or empty for the live version on the rules topic")
	asJSON := fs.Bool("json", false, "print the whole report as JSON")
	labels := fs.String("labels", "", "measure both rulesets against labelled payments (precision, recall, fraud caught): a JSON-lines file of labels, or 'topic' for the labels topic (customers' answers)")
	ratesFile := fs.String("rates", "", "with --labels: also sum the fraud caught in one currency, at the rates of this file (see docs/rules.md); a currency without a rate fails the report")
	currency := fs.String("currency", "", "with --rates: the reporting currency, checked against the rates file's (default: the file's)")
	return &ffcli.Command{
		Name: "backtest", ShortUsage: "fraudpipe rules backtest [flags] FILE", FlagSet: fs, Options: envOptions,
		ShortHelp: "Replay payments through FILE and the live ruleset, touching no live state, and report the difference.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return flag.ErrHelp
			}
			cand, err := rules.LoadFile(args[0])
			if err != nil {
				return err
			}
			// Read before the replay, which may take minutes: a bad rates file fails at once.
			rates, err := loadRates(*ratesFile, *currency, *labels)
			if err != nil {
				return err
			}
			var liveRS *rules.Ruleset
			var k kafka.Config
			needKafka := *live == "" || *payments == "" || *labels == "topic"
			var env rules.Env
			if needKafka {
				reg, kc, closeReg, err := c.registry(ctx)
				if err != nil {
					return err
				}
				defer closeReg()
				k = kc
				liveRS = reg.LatestRuleset()
				lists := registry.NewLists(k, slog.New(slog.DiscardHandler))
				lctx, stop := context.WithCancel(ctx)
				defer stop()
				go lists.Run(lctx)
				if err := lists.WaitReady(ctx); err != nil {
					return err
				}
				env.Lists = lists
			}
			if *live != "" {
				if liveRS, err = rules.LoadFile(*live); err != nil {
					return err
				}
			}
			if liveRS == nil {
				return errors.New("no live ruleset published yet: give --live FILE")
			}
			bt := rules.NewBacktest(liveRS, cand, env)
			start := time.Now()
			var rejected int
			add := func(raw []byte) {
				p, err := rules.ParsePayment(raw)
				if err != nil {
					rejected++
					return
				}
				bt.Add(p)
			}
			if *payments != "" {
				if err := replayFile(*payments, add); err != nil {
					return err
				}
			} else if err := replayTopic(ctx, k, string(topics.Payments), *from, add); err != nil {
				return err
			}
			rep := bt.Report()
			if *labels != "" {
				v, err := loadVerdicts(ctx, k, *labels)
				if err != nil {
					return err
				}
				q := bt.Quality(v)
				if rates != nil {
					if err := q.Convert(rates); err != nil {
						return fmt.Errorf("--rates %s: %w", *ratesFile, err)
					}
				}
				rep.Quality = &q
			}
			if *asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printBacktest(os.Stdout, rep, liveRS, rejected, time.Since(start))
			return nil
		},
	}
}

// loadRates reads the rates file of rules backtest --rates (nil without one) and checks it against --currency.
func loadRates(path, currency, labels string) (*rules.Rates, error) {
	if path == "" {
		if currency != "" {
			return nil, errors.New("--currency needs --rates: the rates to convert with")
		}
		return nil, nil
	}
	if labels == "" {
		return nil, errors.New("--rates converts the fraud caught, which only --labels measures")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--rates: %w", err)
	}
	r, err := rules.ParseRates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if currency != "" && currency != r.Currency {
		return nil, fmt.Errorf("--currency %s, but %s has rates to %s", currency, path, r.Currency)
	}
	return r, nil
}

// loadVerdicts reads labels from a JSON-lines file, or from the labels topic when src is "topic"; a payment's
// newest label stands.
func loadVerdicts(ctx context.Context, k kafka.Config, src string) (rules.Verdicts, error) {
	v := rules.Verdicts{}
	var bad int
	add := func(b []byte) {
		var l topics.Label
		if json.Unmarshal(b, &l) != nil || l.AccountID == "" || l.PaymentID == "" ||
			(l.Verdict != topics.VerdictFraud && l.Verdict != topics.VerdictLegitimate) {
			bad++
			return
		}
		v[rules.VerdictKey(l.AccountID, l.PaymentID)] = l.Verdict == topics.VerdictFraud
	}
	var err error
	if src == "topic" {
		err = replayTopic(ctx, k, topics.Labels, "", add)
	} else {
		err = replayFile(src, add)
	}
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if bad > 0 {
		fmt.Fprintf(os.Stderr, "labels: %d unreadable records skipped\n", bad)
	}
	return v, nil
}

func replayFile(path string, add func([]byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), rules.MaxPaymentBytes+1)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			add([]byte(line))
		}
	}
	return sc.Err()
}

// replayTopic reads every partition of the payments topic from the offset of time from up to its end as of
// now, partition by partition: payments keyed by account keep their order, which is what state depends on.
func replayTopic(ctx context.Context, k kafka.Config, topic, from string, add func([]byte)) error {
	since := int64(-1) // the start of what the topic retains
	if from != "" {
		if d, err := rules.ParseDuration(from); err == nil {
			since = time.Now().Add(-d).UnixMilli()
		} else if t, err := time.Parse(time.RFC3339, from); err == nil {
			since = t.UnixMilli()
		} else {
			return fmt.Errorf("--from %q: want RFC 3339 or a duration such as 24h", from)
		}
	}
	opts, err := k.ClientOptions("fraudpipe-backtest", slog.Default())
	if err != nil {
		return err
	}
	// What retention removed meanwhile is skipped: the replay goes on from what the topic still has.
	opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	admin, err := kadm.NewOptClient(opts...)
	if err != nil {
		return err
	}
	defer admin.Close()
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var firsts kadm.ListedOffsets
	if since < 0 {
		firsts, err = admin.ListStartOffsets(ctx, topic)
	} else {
		firsts, err = admin.ListOffsetsAfterMilli(ctx, since, topic)
	}
	if err == nil {
		err = firsts.Error()
	}
	if err != nil {
		return fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	for _, p := range slices.Sorted(maps.Keys(ends[topic])) {
		end, first := ends[topic][p].Offset, firsts[topic][p].Offset
		if first < 0 || first >= end {
			continue // nothing since then
		}
		if err := replayPartition(ctx, opts, topic, p, first, end, add); err != nil {
			return err
		}
	}
	return nil
}

// replayPartition hands the payments of one partition from first up to end to add, in order.
func replayPartition(ctx context.Context, opts []kgo.Opt, topic string, p int32, first, end int64, add func([]byte)) error {
	client, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(first)}}))...)
	if err != nil {
		return err
	}
	defer client.Close()
	for next := first; next < end; {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("read %s/%d: %w", topic, p, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end {
				next = end // written after the replay started
				return
			}
			next = r.Offset + 1
			if !isControl(r.Headers) {
				add(r.Value)
			}
		})
	}
	return nil
}

func isControl(hs []kgo.RecordHeader) bool {
	for _, h := range hs {
		if h.Key == topics.HeaderControl {
			return true
		}
	}
	return false
}

func printBacktest(w io.Writer, r rules.BacktestReport, live *rules.Ruleset, rejected int, took time.Duration) {
	liveName := fmt.Sprintf("live (version %d)", live.Number)
	if live.Number == 0 {
		liveName = "live (" + live.Source + ")"
	}
	fmt.Fprintf(w, "replayed %d payments in %s (%.0f/s), %d duplicates, %d invalid skipped\n",
		r.Payments, took.Round(time.Millisecond), float64(r.Payments)/max(took.Seconds(), 1e-9), r.Duplicates, rejected)
	fmt.Fprintf(w, "alerts: %s %d, candidate %d\n\n", liveName, r.LiveAlerts, r.CandidateAlerts)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tLIVE ALERTS\tCANDIDATE ALERTS\tLIVE ACCOUNTS\tCANDIDATE ACCOUNTS\tSHADOW FIRES")
	for _, s := range r.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", s.Rule, s.LiveAlerts, s.CandidateAlerts, s.LiveAccounts, s.CandidateAccounts, s.CandidateShadow)
	}
	tw.Flush()
	section := func(title string, ds []rules.AlertDiff) {
		fmt.Fprintf(w, "\n%s: %d\n", title, len(ds))
		for i, d := range ds {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more (--json lists all)\n", len(ds)-20)
				break
			}
			fmt.Fprintf(w, "  %s %s: live %s, candidate %s\n", d.AccountID, d.PaymentID, d.Live, d.Candidate)
		}
	}
	section("newly alerting", r.NewlyAlerting)
	section("no longer alerting", r.StopAlerting)
	section("alerting differently", r.Changed)
	if q := r.Quality; q != nil {
		fmt.Fprintf(w, "\nagainst %d labelled payments (TP true positives, FP false positives, FN missed fraud):\n", q.Live.Labelled)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\tLIVE TP/FP/FN\tPRECISION\tRECALL\tFRAUD CAUGHT\tCANDIDATE TP/FP/FN\tPRECISION\tRECALL\tFRAUD CAUGHT")
		row := func(name string, l, c rules.Quality) {
			fmt.Fprintf(tw, "%s\t%d/%d/%d\t%.2f\t%.2f\t%s\t%d/%d/%d\t%.2f\t%.2f\t%s\n", name,
				l.TruePositives, l.FalsePositives, l.FalseNegatives, l.Precision, l.Recall, caught(l),
				c.TruePositives, c.FalsePositives, c.FalseNegatives, c.Precision, c.Recall, caught(c))
		}
		row("ruleset", q.Live, q.Candidate)
		for _, rq := range q.Rules {
			row(rq.Rule, rq.Live, rq.Candidate)
		}
		tw.Flush()
	}
}

// caught lists the fraud caught per currency, and converted when it was: "7,000.00 EUR, 12.00 USD = 7,011.04 EUR".
func caught(q rules.Quality) string {
	var out []string
	for _, cur := range slices.Sorted(maps.Keys(q.FraudCaught)) {
		out = append(out, rules.FormatAmount(q.FraudCaught[cur], cur))
	}
	s := strings.Join(out, ", ")
	if s == "" {
		s = "-"
	}
	if m := q.FraudCaughtIn; m != nil {
		s += " = " + rules.FormatAmount(m.Amount, m.Currency)
	}
	return s
}

// listsCommand edits the lists topic: entries there add to the rules file's list files at once, without a new
// ruleset version.
func listsCommand() *ffcli.Command {
	var c clusterFlags
	fs := c.flagSet("lists")
	remove := fs.Bool("remove", false, "remove the values instead of adding them")
	return &ffcli.Command{
		Name: "lists", ShortUsage: "fraudpipe lists [--remove] LIST VALUE... | fraudpipe lists show LIST", FlagSet: fs,
		Options:   envOptions,
		ShortHelp: "Add values to (or remove them from) a list on the lists topic, or show a list's entries.",
		LongHelp: "A list must be declared by the newest ruleset version on the rules topic (its lists: section);\n" +
			"values for an undeclared list would never be read, so they are refused.",
		Exec: func(ctx context.Context, args []string) error {
			show := len(args) == 2 && args[0] == "show"
			if len(args) < 2 {
				return flag.ErrHelp
			}
			reg, k, closeReg, err := c.registry(ctx)
			if err != nil {
				return err
			}
			defer closeReg()
			name := args[0]
			if show {
				name = args[1]
			}
			_, rs, ok := reg.Latest()
			if !ok {
				return errors.New("no ruleset version is published yet: lists are declared by the rules file's lists: section")
			}
			fileEntries, declared := rs.Lists[name]
			if !declared {
				return fmt.Errorf("list %q is not declared by ruleset version %d (known lists: %s)", name, rs.Number,
					strings.Join(slices.Sorted(maps.Keys(rs.Lists)), ", "))
			}
			if show {
				log, err := c.log.logger(os.Stderr)
				if err != nil {
					return err
				}
				return showList(ctx, os.Stdout, k, log, name, fileEntries)
			}
			if err := registry.UpdateLists(ctx, k, name, args[1:], *remove); err != nil {
				return err
			}
			verb := "added to"
			if *remove {
				verb = "removed from"
			}
			fmt.Printf("%d values %s list %s\n", len(args)-1, verb, name)
			return nil
		},
	}
}

// showList prints a list's entries: those of its file (in the ruleset version) and those on the lists topic.
func showList(ctx context.Context, w io.Writer, k kafka.Config, log *slog.Logger, name string, file map[string]struct{}) error {
	lists := registry.NewLists(k, log)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { lists.Run(lctx); close(done) }()
	defer func() { stop(); <-done }()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := lists.WaitReady(wctx); err != nil {
		return err
	}
	for _, v := range slices.Sorted(maps.Keys(file)) {
		fmt.Fprintf(w, "file\t%s\n", v)
	}
	for _, v := range lists.Entries(name) {
		fmt.Fprintf(w, "topic\t%s\n", v)
	}
	return nil
}
