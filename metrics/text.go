package metrics

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// SumSamples reads Prometheus text exposition (what /metrics serves) and adds up the counter, gauge and untyped
// samples that selector names: a metric name, optionally with labels that must match, `name{k="v",k2="v2"}`. A
// name the text does not hold sums to 0. Commands and tests that watch a fraudpipe process use it.
func SumSamples(text, selector string) (float64, error) {
	name, want, err := parseSelector(selector)
	if err != nil {
		return 0, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return 0, fmt.Errorf("parse metrics: %w", err)
	}
	f := families[name]
	if f == nil {
		return 0, nil
	}
	sum := 0.0
samples:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue samples
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, nil
}

// parseSelector splits `name{k="v",...}` into the name and the label values.
func parseSelector(s string) (string, map[string]string, error) {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return s, nil, nil
	}
	rest, ok = strings.CutSuffix(rest, "}")
	if !ok {
		return "", nil, fmt.Errorf("metric selector %q: no closing brace", s)
	}
	want := map[string]string{}
	for _, pair := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return "", nil, fmt.Errorf("metric selector %q: %q is not k=\"v\"", s, pair)
		}
		want[strings.TrimSpace(k)] = v[1 : len(v)-1]
	}
	return name, want, nil
}
