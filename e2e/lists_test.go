package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// `fraudpipe lists` writes only to lists the rules in force declare (a typo would otherwise be written and never
// read), and `lists show` prints a list's entries, from its file and from the lists topic.
func TestListsRefuseUnknownListsAndShowEntries(t *testing.T) {
	dir := t.TempDir()
	c := startBroker(t, filepath.Join(dir, "broker"))
	rulesPath := copyRules(t, dir)
	if out, errOut, err := fraudpipeCLI(t, "rules", "push", "--brokers", c.brokers, rulesPath); err != nil {
		t.Fatalf("push: %v\n%s%s", err, out, errOut)
	}

	_, errOut, err := fraudpipeCLI(t, "lists", "--brokers", c.brokers, "blocked-ipz", "203.0.113.9")
	if err == nil || !strings.Contains(errOut, `list "blocked-ipz" is not declared`) || !strings.Contains(errOut, "blocked-ips, blocked-merchants, trusted-devices") {
		t.Fatalf("an undeclared list was not refused with the known ones named: %v\n%s", err, errOut)
	}
	if out, errOut, err := fraudpipeCLI(t, "lists", "--brokers", c.brokers, "blocked-merchants", "m_topic1", "m_topic2"); err != nil {
		t.Fatalf("lists add: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := fraudpipeCLI(t, "lists", "--brokers", c.brokers, "--remove", "blocked-merchants", "m_topic2"); err != nil {
		t.Fatalf("lists remove: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err := fraudpipeCLI(t, "lists", "--brokers", c.brokers, "show", "blocked-merchants")
	if err != nil {
		t.Fatalf("lists show: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "topic\tm_topic1\n") || strings.Contains(out, "m_topic2") || !strings.Contains(out, "file\t") {
		t.Fatalf("lists show blocked-merchants:\n%s", out)
	}
	if _, errOut, err := fraudpipeCLI(t, "lists", "--brokers", c.brokers, "show", "nope"); err == nil || !strings.Contains(errOut, "not declared") {
		t.Fatalf("lists show of an undeclared list: %v\n%s", err, errOut)
	}
}
