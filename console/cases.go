package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/fraudpipe/fraudpipe/cases"
	"github.com/fraudpipe/fraudpipe/topics"
)

// CaseStore is the query side of cases: the cases group's table, read through a goka view
// (processors/cases.Reader). The console never keeps cases of its own.
type CaseStore interface {
	// Account returns an account's cases, nil if it has none.
	Account(id string) (*cases.Account, error)
	// Each calls yield with every account's cases.
	Each(yield func(*cases.Account)) error
}

// defaultCaseWait is how long an analyst's action waits for the view to show its effect before the case page is
// shown anyway: the command goes through Kafka and the cases group, usually within milliseconds.
const defaultCaseWait = 3 * time.Second

// caseRoutes serves the review queue, the case pages, the analysts' actions and the rule quality table, when the
// console has cases to show.
func (s *Server) caseRoutes(mux *http.ServeMux) {
	if s.cfg.Cases == nil {
		return
	}
	mux.HandleFunc("GET /cases", s.page(s.queue))
	mux.HandleFunc("GET /cases/{account}/{number}", s.page(s.casePage))
	mux.HandleFunc("POST /cases/{account}/{number}", s.page(s.caseAction))
	mux.HandleFunc("GET /quality", s.page(s.quality))
}

// queueRow is an open case as the queue lists it.
type queueRow struct {
	*cases.Case
	Action topics.Action
	Rules  []string
	Answer string
}

// queueAges are the queue's age filters: cases opened at least this long ago.
var queueAges = []struct{ Value, Label string }{{"", "any age"}, {"1h", "over an hour"}, {"24h", "over a day"}, {"168h", "over a week"}}

func (s *Server) queue(w http.ResponseWriter, r *http.Request, user string) {
	q := r.URL.Query()
	action, rule, sortBy := topics.Action(q.Get("action")), q.Get("rule"), q.Get("sort")
	minAge, _ := time.ParseDuration(q.Get("age"))
	now := s.cfg.Now()
	var rows []queueRow
	ruleNames := map[string]bool{}
	err := s.cfg.Cases.Each(func(a *cases.Account) {
		c := a.Current
		if c == nil || !c.Open {
			return
		}
		row := queueRow{Case: c, Action: c.Action(), Rules: c.Rules()}
		for _, r := range row.Rules {
			ruleNames[r] = true
		}
		if len(c.Answers) > 0 {
			row.Answer = string(c.Answers[len(c.Answers)-1].Answer)
		}
		if (action != "" && row.Action != action) || (rule != "" && !slices.Contains(row.Rules, rule)) ||
			(minAge > 0 && now.Sub(c.OpenedAt) < minAge) {
			return
		}
		rows = append(rows, row)
	})
	if err != nil {
		s.cfg.Log.Warn("console: reading cases", "err", err)
		http.Error(w, "The cases are not available yet; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	slices.SortFunc(rows, func(a, b queueRow) int {
		if sortBy == "oldest" {
			return a.OpenedAt.Compare(b.OpenedAt)
		}
		return b.OpenedAt.Compare(a.OpenedAt)
	})
	var allRules []string
	for r := range ruleNames {
		allRules = append(allRules, r)
	}
	slices.Sort(allRules)
	s.render(w, http.StatusOK, "queue.html", map[string]any{"User": user, "SignOut": s.cfg.ProxyHeader == "", "Nav": "queue", "Cases": true,
		"Rows": rows, "Rules": allRules, "Ages": queueAges, "Action": string(action), "Rule": rule, "Age": q.Get("age"),
		"Sort": sortBy, "Now": now})
}

// findCase returns the case a request names, or answers 404.
func (s *Server) findCase(w http.ResponseWriter, r *http.Request) (*cases.Account, *cases.Case, bool) {
	account := r.PathValue("account")
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil {
		http.NotFound(w, r)
		return nil, nil, false
	}
	a, err := s.cfg.Cases.Account(account)
	if err != nil {
		s.cfg.Log.Warn("console: reading a case", "account", account, "err", err)
		http.Error(w, "The cases are not available yet; try again in a moment.", http.StatusServiceUnavailable)
		return nil, nil, false
	}
	if a == nil {
		http.NotFound(w, r)
		return nil, nil, false
	}
	c := a.Case(cases.CaseID(account, n))
	if c == nil {
		http.NotFound(w, r)
		return nil, nil, false
	}
	return a, c, true
}

// notices are what the case page says after an action, by the query parameter the action redirects with.
var notices = map[string]string{
	"conflict": "That action was not applied: the case changed meanwhile (closed, reopened or superseded). See its history.",
	"pending":  "Your action was sent; it is not on the case yet. Reload in a moment.",
	"failed":   "Your action could not be sent. Please try again.",
}

func (s *Server) casePage(w http.ResponseWriter, r *http.Request, user string) {
	a, c, ok := s.findCase(w, r)
	if !ok {
		return
	}
	// Each form gets a command id of its own, chosen when the page is shown: submitting the same form twice (a
	// double click, a browser's retry) sends the same command, which the cases group applies once.
	form := rand.Text()
	history := slices.Clone(c.History)
	slices.Reverse(history)
	s.render(w, http.StatusOK, "case.html", map[string]any{"User": user, "SignOut": s.cfg.ProxyHeader == "", "Nav": "queue", "Cases": true,
		"Case": c, "Account": a, "History": history, "Form": form, "Notice": notices[r.URL.Query().Get("notice")],
		"Verdicts": []topics.CaseVerdict{topics.CaseFraud, topics.CaseLegitimate, topics.CaseUnsure}})
}

// caseAction turns a form on the case page into a case command, waits briefly for the view to show that the
// cases group handled it, and shows the case again (POST, redirect, GET).
func (s *Server) caseAction(w http.ResponseWriter, r *http.Request, user string) {
	_, c, ok := s.findCase(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	op := topics.CaseCommandType(r.PostFormValue("op"))
	id := r.PostFormValue("form")
	if id == "" || len(id) > 64 {
		http.Error(w, "The form is incomplete; reload the case.", http.StatusBadRequest)
		return
	}
	cmd := topics.CaseCommand{ID: id + "-" + string(op), Type: op, AccountID: c.AccountID, CaseID: c.ID, By: user,
		At: s.cfg.Now().UTC(), Verdict: topics.CaseVerdict(r.PostFormValue("verdict")), Note: r.PostFormValue("note")}
	if op == topics.CommandAssign {
		cmd.Assignee = user // the console offers "assign to me"
	}
	if err := cases.Validate(cmd); err != nil {
		http.Error(w, "That action is not possible: "+err.Error(), http.StatusBadRequest)
		return
	}
	page := casePath(c)
	if err := s.cfg.CaseCommands(r.Context(), cmd); err != nil {
		s.cfg.Log.Error("case command not sent", "case", c.ID, "command", op, "by", user, "err", err)
		http.Redirect(w, r, page+"?notice=failed", http.StatusSeeOther)
		return
	}
	s.cfg.Log.Info("case command", "case", c.ID, "command", op, "by", user)
	http.Redirect(w, r, page+s.awaitCommand(r.Context(), cmd), http.StatusSeeOther)
}

// awaitCommand polls the view until the cases group has handled the command, or the wait is over, and returns the
// notice the case page should show ("" when the command took effect).
func (s *Server) awaitCommand(ctx context.Context, cmd topics.CaseCommand) string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CaseWait)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if a, err := s.cfg.Cases.Account(cmd.AccountID); err == nil && a != nil {
			if applied, handled := a.Handled(cmd.ID); handled {
				if c := a.Case(cmd.CaseID); applied || (cmd.Type == topics.CommandAssign && c != nil && c.Assignee == cmd.Assignee) {
					return ""
				}
				return "?notice=conflict"
			}
		}
		select {
		case <-ctx.Done():
			return "?notice=pending"
		case <-tick.C:
		}
	}
}

func (s *Server) quality(w http.ResponseWriter, r *http.Request, user string) {
	var all []*cases.Account
	if err := s.cfg.Cases.Each(func(a *cases.Account) { all = append(all, a) }); err != nil {
		s.cfg.Log.Warn("console: reading cases", "err", err)
		http.Error(w, "The cases are not available yet; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	s.render(w, http.StatusOK, "quality.html", map[string]any{"User": user, "SignOut": s.cfg.ProxyHeader == "", "Nav": "quality", "Cases": true,
		"Rules": cases.Quality(all)})
}

// casePath is where a case's page is. Account ids are the producers' and may hold any character.
func casePath(c *cases.Case) string {
	return "/cases/" + url.PathEscape(c.AccountID) + "/" + strconv.Itoa(c.Number)
}

// age says how long ago t was, roughly, as a person reads it.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// errNoCommands is a console with cases to show but nowhere to send analysts' actions.
var errNoCommands = errors.New("console: cases need somewhere to send analysts' commands")
