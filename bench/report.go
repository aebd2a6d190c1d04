package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Print writes the result as a table.
func Print(w io.Writer, r *Result) {
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "payments %d over %d accounts (%d of them paid, so hold state), partitions %d, detectors %d, alerts %.2f%%\n",
		r.Count, r.Accounts, r.AccountsPaid, r.Partitions, r.Detectors, r.AlertShare*100)
	if r.CountOnly {
		fmt.Fprintf(w, "detectors counting only (--count-only): no payment decoded or scored\n")
	}
	fmt.Fprintf(w, "\n%-44s %12s\n", "measure", "value")
	row := func(name, format string, v ...any) { fmt.Fprintf(w, "%-44s %12s\n", name, fmt.Sprintf(format, v...)) }
	row("raw broker produce+consume (records/s)", "%.0f", r.RawPerSec)
	row("  before the pipeline, after it", "%s", fmt.Sprintf("%.0f, %.0f", r.RawBeforePerSec, r.RawAfterPerSec))
	row("pipeline end to end (payments/s)", "%.0f", r.PipelinePerSec)
	row("pipeline / raw (median of the rounds)", "%.2f", r.Ratio)
	for i, p := range r.Rounds {
		row(fmt.Sprintf("  round %d: payments/s, raw beside it", i+1), "%s", fmt.Sprintf("%.0f / %.0f = %.2f", p.PipelinePerSec, p.RawPerSec, p.Ratio))
	}
	if len(r.Rounds) > 1 {
		row("  idle detectors' CPU s during those baselines", "%.2f", r.RawDetectorCPU)
	}
	row("detector CPU seconds per million payments", "%.1f", r.CPUSecPerMillion)
	row("detector heap allocations per payment", "%.1f", r.AllocsPerPayment)
	row("  their bytes", "%.0f", r.AllocBytesPerPayment)
	row("detector peak RSS (MiB)", "%.0f", r.PeakRSSMiB)
	row("state bytes per account (mean table write)", "%.0f", r.StateBytesAccount)
	row("changelog bytes per payment", "%.0f", r.ChangelogBytesPay)
	fmt.Fprintf(w, "\n%-24s %8s %9s %9s %9s %9s\n", "payment-to-alert latency", "alerts", "p50 ms", "p95 ms", "p99 ms", "max ms")
	lat := func(name string, l Latency) {
		fmt.Fprintf(w, "%-24s %8d %9.1f %9.1f %9.1f %9.1f\n", name, l.Alerts, l.P50ms, l.P95ms, l.P99ms, l.MaxMs)
	}
	lat("at saturation", r.SaturationLatency)
	keys := make([]int, 0, len(r.RateLatency))
	for k := range r.RateLatency {
		n, _ := strconv.Atoi(k)
		keys = append(keys, n)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lat(fmt.Sprintf("at %d/s", k), r.RateLatency[strconv.Itoa(k)])
	}
}
