package main

import (
	"context"
	"testing"
)

func TestEnvironmentMirrorsFlagsAndFlagsWin(t *testing.T) {
	t.Setenv("FRAUDPIPE_DATA_DIR", "/from/env")
	t.Setenv("FRAUDPIPE_BROKER_LISTEN", "127.0.0.1:1234")
	t.Setenv("FRAUDPIPE_RULES", "/env/rules.yaml")
	cmd := runCommand()
	if err := cmd.Parse([]string{"--rules", "/flag/rules.yaml"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"data-dir": "/from/env", "broker-listen": "127.0.0.1:1234", "rules": "/flag/rules.yaml",
	} {
		if got := cmd.FlagSet.Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
}

func TestUnknownSubcommandOrFlagIsAnError(t *testing.T) {
	if err := run(context.Background(), []string{"run", "--no-such-flag"}); err == nil {
		t.Fatal("an unknown flag must be an error")
	}
}
