package producer

import (
	"testing"
	"time"
)

// BenchmarkGenerateAndEncode is the load generator's cost per payment. The bench's generator shares the machine
// with the detector it measures, so what it spends is taken from the pipeline's figures.
func BenchmarkGenerateAndEncode(b *testing.B) {
	g := NewGenerator(1, 1_000_000, 0.01, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		p := g.Next()
		Encode(p)
	}
}

func BenchmarkGenerate(b *testing.B) {
	g := NewGenerator(1, 1_000_000, 0.01, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		g.Next()
	}
}
