package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Between a processor's runs the lag series keep their last values instead of vanishing.
func TestLagIsReportedWhileTheProcessorRestarts(t *testing.T) {
	tt := tester.New(t)
	g := goka.DefineGroup("lagtest", goka.Input("in", new(codec.String), func(goka.Context, any) {}))
	p, err := goka.NewProcessor(nil, g, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	tt.Consume("in", "k", "v")

	var current atomic.Pointer[goka.Processor]
	current.Store(p)
	reg := prometheus.NewRegistry()
	RegisterLag(reg, "lagtest", current.Load)
	deadline := time.Now().Add(30 * time.Second)
	for testutil.CollectAndCount(reg, "fraudpipe_consumer_lag") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no lag series while the processor runs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	running := testutil.CollectAndCount(reg, "fraudpipe_consumer_lag")

	current.Store(nil) // restarting
	cancel()
	<-done
	if n := testutil.CollectAndCount(reg, "fraudpipe_consumer_lag"); n != running {
		t.Fatalf("%d lag series while restarting, want the %d last seen", n, running)
	}
}

func TestHealthAnswersWithEachPartsState(t *testing.T) {
	h := NewHealth()
	detector := Status{Live: true, Ready: true, Detail: "running"}
	h.Add("detector", func() Status { return detector })
	h.Add("kafka", func() Status { return Status{Live: true, Ready: true, Detail: "answers"} })
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.handler(path == "/readyz").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/readyz"); code != 200 || body != "ok\ndetector: ready: running\nkafka: ready: answers\n" {
		t.Fatalf("/readyz %d %q", code, body)
	}
	detector = Status{Live: true, Detail: "restarting after 2 failure(s) in a row; last: boom"}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not ready\ndetector: not ready: restarting after 2") {
		t.Fatalf("/readyz %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d while restarting a few times", code)
	}
	detector = Status{Detail: "stopped by the record failure policy: record payments/0 offset 7 failed 5 times"}
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "detector: not live: stopped by the record failure policy") {
		t.Fatalf("/healthz %d %q", code, body)
	}
}
