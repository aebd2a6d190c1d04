package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

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

// Scrape fetches the metrics text a fraudpipe process serves on addr (host:port), or "" when it does not answer
// within two seconds.
func Scrape(addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Query scrapes addr and sums the samples selector names (SumSamples); -1 when the process does not answer or
// its text does not parse.
func Query(addr, selector string) float64 {
	body := Scrape(addr)
	if body == "" {
		return -1
	}
	v, err := SumSamples(body, selector)
	if err != nil {
		return -1
	}
	return v
}
