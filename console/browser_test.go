package console

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fraudpipe/fraudpipe/topics"
)

// browser starts headless Chromium for a test, or skips it where Chromium is not installed outside CI (.ci/run
// installs it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run installs it")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 720), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// artifacts is where tests leave screenshots: $FRAUDPIPE_ARTIFACTS (CI keeps it), else the test's temp dir.
func artifacts(t *testing.T) string {
	if d := os.Getenv("FRAUDPIPE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// saveScreenshot keeps the whole page as an artefact.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifacts(t), name), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

// An analyst signs in with a real browser, sees the alerts so far, and a new alert appears on the page without a
// reload; in the review queue they open the new alert's case, assign it to themselves and record a verdict, which
// the case's history then shows with their name; signing out ends the session.
func TestTheConsoleInABrowser(t *testing.T) {
	hub := NewHub(50)
	store := newMemCases()
	at := time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)
	publish := func(a topics.Alert) { hub.Publish(a); store.alert(a) }
	publish(topics.Alert{ID: "alert_old", AccountID: "acct_1001", PaymentID: "pay_1", Action: topics.ActionReview, Score: 45,
		Rules:   []topics.Fired{{Name: "rapid_fire", Score: 45, Reason: "5 payments in 5m > limit 4"}},
		Payment: topics.Payment{ID: "pay_1", Amount: 4999, Currency: "EUR", MerchantID: "m_books", Country: "DE", Timestamp: at}, DetectedAt: at})
	publish(topics.Alert{ID: "alert_3", AccountID: "acct_3003", PaymentID: "pay_3", Action: topics.ActionBlock, Score: 80,
		Rules:      []topics.Fired{{Name: "globetrotter", Score: 80, Reason: "3 distinct country values in 30m > limit 2"}},
		Payment:    topics.Payment{ID: "pay_3", Amount: 4200, Currency: "EUR", MerchantID: "m_travel", Country: "BR", Timestamp: at.Add(-time.Hour)},
		DetectedAt: at.Add(-time.Hour)})
	store.answer(topics.CustomerAnswer{AlertID: "alert_3", AccountID: "acct_3003", PaymentID: "pay_3", Answer: topics.AnswerDenied, AnsweredAt: at})
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Alerts: hub, Cases: store, CaseCommands: store.command})
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(`input[name=user]`),
	); err != nil {
		t.Fatalf("open the console: %v", err)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || !strings.HasPrefix(title, "Sign in") {
		t.Fatalf("a signed-out visit did not land on the sign-in page: %q %v", title, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`input[name=user]`, "alice"),
		chromedp.SendKeys(`input[name=password]`, testPassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`#alerts`),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	table, err := chromedp.Run(ctx, chromedp.Text(`#alerts tbody`))
	if err != nil || !strings.Contains(table, "pay_1") || !strings.Contains(table, "49.99 EUR") {
		t.Fatalf("the alerts so far are not on the page: %q %v", table, err)
	}
	// The feed is live once the page's EventSource is open; an alert published then appears at the top.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('feed-state').textContent === 'live'`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the live feed did not connect: %v", err)
	}
	publish(topics.Alert{ID: "alert_new", AccountID: "acct_2002", PaymentID: "pay_2", Action: topics.ActionBlock, Score: 95,
		Rules: []topics.Fired{{Name: "big_ticket", Score: 60, Reason: "amount 6,500.00 EUR > limit 5,000.00 EUR"},
			{Name: "new_country", Score: 35, Reason: "country FR not seen in 30d"}},
		Payment: topics.Payment{ID: "pay_2", Amount: 650000, Currency: "EUR", MerchantID: "m_jewels", Country: "FR", CardID: "card_77",
			DeviceID: "dev_9", IP: "203.0.113.7", Timestamp: at.Add(time.Minute)},
		DetectedAt: at.Add(time.Minute)})
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`tr[data-alert="alert_new"]`)); err != nil {
		t.Fatalf("the new alert did not appear: %v", err)
	}
	first, err := chromedp.Run(ctx, chromedp.Text(`#alerts tbody tr:first-child`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first, "pay_2") || !strings.Contains(first, "6,500.00 EUR") || !strings.Contains(first, "big_ticket, new_country") {
		t.Fatalf("first row %q", first)
	}
	if err := os.WriteFile(filepath.Join(artifacts(t), "console-live.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// The new alert opened a case; the queue lists it first (newest first).
	if err := chromedp.Do(ctx,
		chromedp.Click(`header nav a[href="/cases"]`),
		chromedp.WaitVisible(`#queue`),
	); err != nil {
		t.Fatalf("open the queue: %v", err)
	}
	queue, err := chromedp.Run(ctx, chromedp.Text(`#queue tbody`))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(queue), "2026-12-05 09:31") || !strings.Contains(queue, "acct_2002 #1") ||
		!strings.Contains(queue, "big_ticket, new_country") || !strings.Contains(queue, "denied") {
		t.Fatalf("the queue: %q %v", queue, err)
	}
	saveScreenshot(t, ctx, "console-queue.png")
	if err := chromedp.Do(ctx,
		chromedp.Click(`#queue a[href="/cases/acct_2002/1"]`),
		chromedp.WaitVisible(`#history`),
		chromedp.Click(`button[value=assign]`),
	); err != nil {
		t.Fatalf("open the case and assign it: %v", err)
	}
	// The page the POST redirects to names the assignee; the old page's form is visible until it comes.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#assignee[data-assignee="alice"]`)); err != nil {
		t.Fatalf("the case was not assigned to alice: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#verdict-form select[name=verdict]`, "fraud"),
		chromedp.SendKeys(`#verdict-form input[name=note]`, "customer abroad, card reported stolen"),
		chromedp.Click(`#verdict-form button`),
		chromedp.WaitVisible(`#history tr[data-event="verdict"]`),
	); err != nil {
		t.Fatalf("record a verdict: %v", err)
	}
	latest, err := chromedp.Run(ctx, chromedp.Text(`#history tbody tr:first-child`))
	if err != nil || !strings.Contains(latest, "alice") || !strings.Contains(latest, "fraud") || !strings.Contains(latest, "card reported stolen") {
		t.Fatalf("the verdict in the history: %q %v", latest, err)
	}
	if reasons, err := chromedp.Run(ctx, chromedp.Text(`#case-alerts`)); err != nil || !strings.Contains(reasons, "amount 6,500.00 EUR > limit 5,000.00 EUR") {
		t.Fatalf("the rules' reasons on the case: %q %v", reasons, err)
	}
	saveScreenshot(t, ctx, "console-case.png")

	if err := chromedp.Do(ctx,
		chromedp.Click(`header form button`),
		chromedp.WaitVisible(`input[name=user]`),
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(`input[name=user]`),
	); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || !strings.HasPrefix(title, "Sign in") {
		t.Fatalf("after signing out the console is still open: %q %v", title, err)
	}
}
