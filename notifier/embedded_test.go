package notifier

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fraudpipe/fraudpipe/rules"
)

// The zero-install default runs the notifier on the embedded Redis (miniredis): every script and command the
// store uses must work there as on redis-server, leases included.
func TestStoreWorksOnTheEmbeddedRedis(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: startEmbeddedRedis(t, ctx).Addr()})
	defer rdb.Close()
	s := NewStore(rdb, slog.Default(), nil)

	status, _, _, err := s.claim(ctx, "notif:a:sms:x", "t1", 300*time.Millisecond)
	if err != nil || status != claimed {
		t.Fatalf("claim: %s %v", status, err)
	}
	if status, _, _, _ := s.claim(ctx, "notif:a:sms:x", "t2", time.Second); status != busy {
		t.Fatalf("second claim: %s, want busy", status)
	}
	waitFor(t, "the lease to expire on the embedded Redis", func() bool {
		status, _, _, _ := s.claim(ctx, "notif:a:sms:x", "t3", time.Second)
		return status == claimed
	})
	if err := s.settle(ctx, "notif:a:sms:x", "t3", sent, true); err != nil {
		t.Fatal(err)
	}
	if status, _, _, _ := s.claim(ctx, "notif:a:sms:x", "t4", time.Second); status != sent {
		t.Fatalf("after settle: %s", status)
	}
	ok, _, err := s.allow(ctx, "acct", "sms", RateLimit{Limit: 1, Per: time.Hour})
	if err != nil || !ok {
		t.Fatalf("rate limit first: %v %v", ok, err)
	}
	if ok, after, _ := s.allow(ctx, "acct", "sms", RateLimit{Limit: 1, Per: time.Hour}); ok || after <= 0 {
		t.Fatalf("rate limit second: %v %s", ok, after)
	}
	j := job{AlertID: "a", Channel: "sms", Recipient: "+4915"}
	if err := s.park(ctx, j, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	jobs, members, err := s.due(ctx, time.Now(), time.Minute, 10)
	if err != nil || len(jobs) != 1 || s.done(ctx, members[0]) != nil {
		t.Fatalf("due: %v %v", jobs, err)
	}
	if err := s.replicate(ctx, "acct_1", 0, 5, []byte(`{"account_id":"acct_1","email":"a@x.example"}`)); err != nil {
		t.Fatal(err)
	}
	s.replicate(ctx, "acct_1", 0, 4, []byte(`{"account_id":"acct_1","email":"old@x.example"}`)) // replayed: ignored
	if c, err := s.customer(ctx, "acct_1"); err != nil || c.Email != "a@x.example" {
		t.Fatalf("customer %+v %v", c, err)
	}
	if next, _ := s.replicatedOffsets(ctx); next[0] != 6 {
		t.Fatalf("next offset %v", next)
	}
	// A tombstone on the compacted topic removes the customer.
	if err := s.replicate(ctx, "acct_1", 0, 6, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := s.customer(ctx, "acct_1"); err != nil || c != nil {
		t.Fatalf("after a tombstone: %+v %v", c, err)
	}
}

func TestTemplatesCanBeOverridden(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sms.tmpl"), []byte(`Betrag {{.Amount}} bei {{.Merchant}} ({{.Card}}) - {{.Name}}`), 0o644)
	tmpl, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := alert("p", rules.ActionBlock)
	m, err := tmpl.Render(ChannelSMS, "+4915", a, nil)
	if err != nil || m.Text != "Betrag 6,000.00 EUR bei m_jewels (****1111) -" {
		t.Fatalf("sms %q %v", m.Text, err)
	}
	// The other templates stay built in.
	if m, _ := tmpl.Render(ChannelEmail, "a@x.example", a, nil); !strings.HasPrefix(m.Subject, "We blocked a payment") {
		t.Fatalf("subject %q", m.Subject)
	}
	os.WriteFile(filepath.Join(dir, "push.tmpl"), []byte(`{{.NoSuchField}}`), 0o644)
	if _, err := LoadTemplates(dir); err != nil {
		t.Fatalf("a template is checked when rendered, not parsed: %v", err)
	}
	tmpl, _ = LoadTemplates(dir)
	if _, err := tmpl.Render(ChannelPush, "https://push", a, nil); err == nil || !strings.Contains(err.Error(), "push.tmpl") {
		t.Fatalf("a broken template must fail with its name, got %v", err)
	}
}
