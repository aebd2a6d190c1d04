package metrics

import "testing"

func TestSumSamplesAddsTheSelectedSeries(t *testing.T) {
	text := `# HELP fraudpipe_output_bytes Value bytes emitted.
# TYPE fraudpipe_output_bytes gauge
fraudpipe_output_bytes{group="detector",topic="alerts"} 10
fraudpipe_output_bytes{group="detector",topic="detector-table"} 300
fraudpipe_output_bytes{group="notifier",topic="detector-table"} 5
# HELP fraudpipe_payments_processed_total Payments scored.
# TYPE fraudpipe_payments_processed_total counter
fraudpipe_payments_processed_total 42
`
	for selector, want := range map[string]float64{
		"fraudpipe_output_bytes":                                          315,
		`fraudpipe_output_bytes{topic="detector-table"}`:                  305,
		`fraudpipe_output_bytes{group="detector",topic="detector-table"}`: 300,
		"fraudpipe_payments_processed_total":                              42,
		"fraudpipe_not_there":                                             0,
		`fraudpipe_output_bytes{group="nobody"}`:                          0,
	} {
		got, err := SumSamples(text, selector)
		if err != nil || got != want {
			t.Errorf("SumSamples(%s) = %v, %v; want %v", selector, got, err, want)
		}
	}
	if _, err := SumSamples(text, `fraudpipe_output_bytes{topic=alerts}`); err == nil {
		t.Error("an unquoted label value was accepted")
	}
	if _, err := SumSamples("not metrics {", "x"); err == nil {
		t.Error("malformed text was accepted")
	}
}
