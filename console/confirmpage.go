package console

import (
	"errors"
	"net/http"
	"time"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/topics"
)

// The customer's page behind a "Was this you?" link: public, no sign-in; the link's signature is the credential.
// Every refused link gets the same page, and the log only the reason, never the token.

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	l, ok := s.link(w, r)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "confirm.html", map[string]any{"Link": l, "Token": r.PathValue("token")})
}

func (s *Server) confirmAnswer(w http.ResponseWriter, r *http.Request) {
	l, ok := s.link(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
	ans := topics.Answer(r.PostFormValue("answer"))
	if ans != topics.AnswerConfirmed && ans != topics.AnswerDenied {
		s.render(w, http.StatusBadRequest, "confirm.html", map[string]any{"Link": l, "Token": r.PathValue("token"), "Error": "Please choose one of the two answers."})
		return
	}
	a := topics.CustomerAnswer{AlertID: l.AlertID, AccountID: l.AccountID, PaymentID: l.PaymentID, CardID: l.CardID,
		Action: topics.Action(l.Action), Answer: ans, Channel: "web", AnsweredAt: s.cfg.Now().UTC()}
	if err := s.cfg.Answers(r.Context(), a); err != nil {
		s.cfg.Log.Error("customer answer not recorded", "alert", l.AlertID, "err", err)
		s.render(w, http.StatusServiceUnavailable, "answered.html", map[string]any{"Error": true})
		return
	}
	s.cfg.Log.Info("customer answer", "alert", l.AlertID, "account", l.AccountID, "answer", ans)
	s.render(w, http.StatusOK, "answered.html", map[string]any{"Answer": string(ans), "Card": l.CardID != ""})
}

// link checks the request's token; on a refusal it has answered already.
func (s *Server) link(w http.ResponseWriter, r *http.Request) (confirm.Link, bool) {
	if s.cfg.Confirm == nil {
		http.NotFound(w, r)
		return confirm.Link{}, false
	}
	l, err := s.cfg.Confirm.Verify(r.PathValue("token"), s.cfg.Now())
	if err != nil {
		reason := "forged"
		if errors.Is(err, confirm.ErrExpired) {
			reason = "expired"
		}
		s.cfg.Log.Warn("confirmation link refused", "reason", reason, "remote", r.RemoteAddr)
		s.render(w, http.StatusNotFound, "answered.html", map[string]any{"Invalid": true})
		return confirm.Link{}, false
	}
	return l, true
}

// linkExpiry is shown on the page.
func linkExpiry(l confirm.Link) string {
	return time.Unix(l.Expires, 0).UTC().Format("2 Jan 2006 15:04 MST")
}
