// Package archcheck holds the test that keeps the packages' dependencies pointing the way the data flows: wire
// contracts at the bottom, Kafka plumbing beside them, the rules as pure logic, and the processors and services on
// top translating between them.
package archcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/fraudpipe/fraudpipe"

// deps lists every package pkg depends on, directly or not (go list -deps), without pkg itself.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var all []string
	for _, p := range strings.Fields(string(out)) {
		if p != module+"/"+pkg {
			all = append(all, p)
		}
	}
	return all
}

func TestPackagesDependOnlyDownTheFlow(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pkg    string
		why    string
		denied []string // import path prefixes pkg must not depend on
	}{
		{"topics", "the wire contracts depend on nothing of ours and on no client library",
			[]string{module + "/", "github.com/lovoo/goka", "github.com/IBM/sarama", "github.com/twmb/franz-go", "github.com/google/cel-go"}},
		{"kafka", "Kafka plumbing depends on no domain package",
			[]string{module + "/rules", module + "/processors", module + "/notifier", module + "/producer", "github.com/google/cel-go"}},
		{"kafka/gokaadapter", "goka's adapters are plumbing too",
			[]string{module + "/rules", module + "/processors", module + "/notifier", module + "/producer", "github.com/google/cel-go"}},
		{"rules", "the rules are pure logic: no Kafka, no storage, no metrics, no logging",
			[]string{module + "/kafka", module + "/processors", module + "/notifier", "github.com/lovoo/goka", "github.com/IBM/sarama",
				"github.com/twmb/franz-go", "github.com/redis/go-redis", "github.com/prometheus/", "log/slog"}},
		{"confirm", "the confirmation links and saga are pure logic like the rules",
			[]string{module + "/kafka", module + "/processors", module + "/notifier", module + "/console", "github.com/lovoo/goka",
				"github.com/IBM/sarama", "github.com/twmb/franz-go", "github.com/redis/go-redis", "github.com/prometheus/", "log/slog", "net/http"}},
		{"cases", "the case lifecycle is pure logic like the rules",
			[]string{module + "/kafka", module + "/processors", module + "/notifier", module + "/console", "github.com/lovoo/goka",
				"github.com/IBM/sarama", "github.com/twmb/franz-go", "github.com/redis/go-redis", "github.com/prometheus/", "log/slog", "net/http"}},
		{"console", "the console reads alerts and records answers; it scores nothing and delivers nothing",
			[]string{module + "/processors", module + "/notifier", module + "/rules/registry", "github.com/lovoo/goka"}},
		{"api", "the decision API produces payments and waits for decisions; it scores nothing itself",
			[]string{module + "/processors", module + "/notifier", module + "/console", module + "/rules/registry"}},
		{"notifier", "the notifier is its own service: it shares the processors' guard, not the detector",
			[]string{module + "/processors/detector", module + "/rules/registry"}},
	} {
		for _, d := range deps(t, c.pkg) {
			for _, bad := range c.denied {
				if strings.HasPrefix(d, bad) {
					t.Errorf("%s depends on %s: %s", c.pkg, d, c.why)
				}
			}
		}
	}
}
