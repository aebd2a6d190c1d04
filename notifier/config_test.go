package notifier

import "testing"

func TestShippedExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../examples/notifier.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Email == nil || cfg.Email.Port != 1025 || len(cfg.Routes["block"]) != 3 || cfg.RateLimits["sms"].Limit != 5 {
		t.Fatalf("example config %+v", cfg)
	}
}
