package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// scripts/produce hands every flag to fraudpipe produce: flags alone still mean the demo stream (they used to
// drop --generate and read stdin), a flag overrides the demo's, and a file keeps its flags.
func TestProduceScriptPassesEveryFlagThrough(t *testing.T) {
	c := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	script, _ := filepath.Abs("../scripts/produce")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("sh", append([]string{script}, args...)...)
		cmd.Dir = t.TempDir() // the user's directory, not the repository's
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/produce %v: %v\n%s", args, err, out)
		}
	}
	run("--brokers", c.brokers, "--count", "40", "--rate", "0", "--accounts", "10")
	payments := func() int {
		n := 0
		for _, r := range kcatConsume(t, c.brokers, "payments") {
			if r.Headers["fraudpipe-control"] == "" {
				n++
			}
		}
		return n
	}
	if n := payments(); n != 40 {
		t.Fatalf("%d payments on the topic after the demo stream with --count 40", n)
	}
	file, _ := filepath.Abs("../examples/payments.jsonl")
	run(file, "--brokers", c.brokers)
	if n := payments(); n != 40+15 {
		t.Fatalf("%d payments on the topic after the 15 of the example file", n)
	}
}
