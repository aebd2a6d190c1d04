package notifier

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

//go:embed templates/*.tmpl
var builtinTemplates embed.FS

// Template files. A directory given as `templates` in the notifier config overrides any of them by name.
const (
	tmplEmailSubject = "email_subject.tmpl"
	tmplEmailText    = "email.txt.tmpl"
	tmplEmailHTML    = "email.html.tmpl"
	tmplSMS          = "sms.tmpl"
	tmplPush         = "push.tmpl"
)

// Templates render alerts into messages.
type Templates struct {
	text map[string]*template.Template
	html *htmltemplate.Template
	// confirmLink returns the "Was this you?" link of an alert and its token, "" for none (WithConfirm).
	confirmLink func(*topics.Alert) (url, token string)
}

// WithConfirm has messages of the configured actions carry a signed link to the confirmation page.
func (t *Templates) WithConfirm(c *ConfirmConfig, now func() time.Time) error {
	if c == nil {
		t.confirmLink = nil
		return nil
	}
	s, err := confirm.NewSigner([]byte(c.Key))
	if err != nil {
		return err
	}
	base := strings.TrimRight(c.URL, "/")
	t.confirmLink = func(a *topics.Alert) (string, string) {
		if !slices.Contains(c.Actions, a.Action) {
			return "", ""
		}
		token := s.Token(confirm.Link{AlertID: a.ID, AccountID: a.AccountID, PaymentID: a.PaymentID,
			CardID: a.Payment.CardID, Action: string(a.Action), Expires: now().Add(c.TTL).Unix()})
		return base + "/" + token, token
	}
	return nil
}

// TemplateData is what templates see. Personal data is reduced to what the channel needs: the card appears as
// its last four characters only.
type TemplateData struct {
	AlertID string
	Action  string
	// Late: the alert was raised after the payment had gone through (a payment stamped earlier arrived later);
	// nothing was blocked, whatever the action says.
	Late     bool
	Name     string
	Amount   string // formatted in the payment's currency: 1,250.50 EUR
	Merchant string
	Country  string
	Card     string // masked: ****1111
	When     string // in the customer's time zone
	Reasons  []string
	Locale   string
	Lang     string
	Alert    *topics.Alert
	// ConfirmURL is the signed "Was this you?" link, "" when the alert's messages carry none.
	ConfirmURL string
}

var funcs = template.FuncMap{
	"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
}

// LoadTemplates parses the built-in templates and the overrides in dir (empty: none).
func LoadTemplates(dir string) (*Templates, error) {
	read := func(name string) (string, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return string(b), nil
			}
			if !os.IsNotExist(err) {
				return "", fmt.Errorf("template %s: %w", name, err)
			}
		}
		b, err := builtinTemplates.ReadFile("templates/" + name)
		return string(b), err
	}
	t := &Templates{text: map[string]*template.Template{}}
	for _, name := range []string{tmplEmailSubject, tmplEmailText, tmplSMS, tmplPush} {
		src, err := read(name)
		if err != nil {
			return nil, err
		}
		if t.text[name], err = template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src); err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
	}
	src, err := read(tmplEmailHTML)
	if err != nil {
		return nil, err
	}
	if t.html, err = htmltemplate.New(tmplEmailHTML).Parse(src); err != nil {
		return nil, fmt.Errorf("template %s: %w", tmplEmailHTML, err)
	}
	return t, nil
}

func templateData(a *topics.Alert, c *topics.Customer) TemplateData {
	d := TemplateData{
		AlertID: a.ID, Action: string(a.Action), Late: a.Late, Amount: rules.FormatAmount(a.Payment.Amount, a.Payment.Currency),
		Merchant: a.Payment.MerchantID, Country: a.Payment.Country, Card: maskCard(a.Payment.CardID), Alert: a,
		Lang: "en",
	}
	if d.Merchant == "" {
		d.Merchant = "a merchant"
	}
	loc := time.UTC
	if c != nil {
		d.Name, d.Locale = c.Name, c.Locale
		if c.Locale != "" {
			d.Lang, _, _ = strings.Cut(c.Locale, "-")
		}
		if c.QuietHours != nil && c.QuietHours.TimeZone != "" {
			if l, err := time.LoadLocation(c.QuietHours.TimeZone); err == nil {
				loc = l
			}
		}
	}
	d.When = a.Payment.Timestamp.In(loc).Format("2 Jan 2006 15:04 MST")
	for _, f := range a.Rules {
		d.Reasons = append(d.Reasons, f.Reason)
	}
	return d
}

func maskCard(card string) string {
	if len(card) <= 4 {
		return "****"
	}
	return "****" + card[len(card)-4:]
}

func (t *Templates) exec(name string, d TemplateData) (string, error) {
	var b bytes.Buffer
	if err := t.text[name].Execute(&b, d); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// Render builds the message of an alert for one channel and recipient.
func (t *Templates) Render(channel, to string, a *topics.Alert, c *topics.Customer) (*Message, error) {
	d := templateData(a, c)
	m := &Message{Channel: channel, To: to, MessageID: messageID(a.DeliveryID(), to), Urgent: a.Action == rules.ActionBlock,
		Topic: a.DeliveryID()}
	if t.confirmLink != nil {
		d.ConfirmURL, m.ConfirmToken = t.confirmLink(a)
	}
	var err error
	switch channel {
	case ChannelEmail:
		if m.Subject, err = t.exec(tmplEmailSubject, d); err != nil {
			return nil, err
		}
		if m.Text, err = t.exec(tmplEmailText, d); err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.html.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("render %s: %w", tmplEmailHTML, err)
		}
		m.HTML = b.String()
	case ChannelSMS:
		m.Text, err = t.exec(tmplSMS, d)
	case ChannelPush:
		m.Text, err = t.exec(tmplPush, d)
		if err == nil && !json.Valid([]byte(m.Text)) {
			err = fmt.Errorf("render %s: not JSON: %s", tmplPush, m.Text)
		}
	}
	return m, err
}
