package notifier

import (
	"context"
	"errors"
	"fmt"

	"github.com/wneessen/go-mail"
)

// emailSender sends over SMTP with go-mail.
type emailSender struct{ cfg *EmailConfig }

// NewEmailSender returns a Sender for an SMTP server.
func NewEmailSender(cfg *EmailConfig) Sender { return &emailSender{cfg: cfg} }

func (s *emailSender) client() (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(s.cfg.Port), mail.WithTimeout(10e9)}
	switch s.cfg.TLS {
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case "tls":
		opts = append(opts, mail.WithSSL())
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	return mail.NewClient(s.cfg.Host, opts...)
}

func (s *emailSender) Send(ctx context.Context, m *Message) error {
	msg := mail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("email from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("email to: %w", err) // permanent: the address is unusable
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID[1 : len(m.MessageID)-1])
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	c, err := s.client()
	if err != nil {
		return fmt.Errorf("email client: %w", err)
	}
	err = c.DialAndSendWithContext(ctx, msg)
	if err == nil {
		return nil
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		if se.IsTemp() {
			return &TemporaryError{Err: err}
		}
		// A 5xx reply (550 mailbox unavailable, 554 rejected) is final.
		if se.ErrorCode() >= 500 {
			return err
		}
	}
	// Dial, TLS and timeout failures: the server may not have the message, or (after DATA) may; unsure.
	return networkError(err, true)
}
