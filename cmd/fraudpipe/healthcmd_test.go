package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// `fraudpipe health` is what container healthchecks run: it must fail on anything but 200.
func TestHealthCommandFollowsTheStatus(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte("detector: ready: running\n"))
	}))
	defer srv.Close()
	if err := run(context.Background(), []string{"health", "--url", srv.URL + "/readyz"}); err != nil {
		t.Fatalf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := run(context.Background(), []string{"health", "--url", srv.URL + "/readyz"}); err == nil {
		t.Fatal("503 was taken for healthy")
	}
	srv.Close()
	if err := run(context.Background(), []string{"health", "--url", srv.URL + "/readyz"}); err == nil {
		t.Fatal("no answer was taken for healthy")
	}
}
