package registry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/rules"
)

func version(t *testing.T, n int, limit string, effective map[int32]int64) []byte {
	t.Helper()
	b := rules.Bundle{Name: "r.yaml", Data: []byte("thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big, type: amount, limit: " + limit + ", currency: EUR, score: 60 }\n")}
	data, err := json.Marshal(Version{Version: n, Digest: b.Digest(), Bundle: b, Effective: effective})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A partition's version at an offset is the newest whose marker in that partition is at or before it; before any
// marker, the oldest version applies.
func TestVersionAtAnOffset(t *testing.T) {
	r := &Registry{log: slog.New(slog.NewTextHandler(io.Discard, nil)), versions: map[int]*entry{}, changed: make(chan struct{})}
	r.apply([]byte(Key(1)), version(t, 1, "100", map[int32]int64{0: 5}))
	r.apply([]byte(Key(2)), version(t, 2, "200", map[int32]int64{0: 10, 1: 3}))
	r.apply([]byte("v00000003"), []byte("not json"))                      // ignored
	r.apply([]byte(Key(4)), version(t, 3, "300", nil))                    // key and version disagree: ignored
	r.apply([]byte(Key(5)), []byte(`{"version":5,"bundle":{"data":""}}`)) // invalid ruleset: ignored
	for _, c := range []struct {
		partition int32
		offset    int64
		want      int
	}{{0, 3, 1}, {0, 5, 1}, {0, 9, 1}, {0, 10, 2}, {0, 99, 2}, {1, 2, 1}, {1, 3, 2}, {2, 50, 1}} {
		if got := r.At(c.partition, c.offset).Number; got != c.want {
			t.Errorf("At(%d, %d) = version %d, want %d", c.partition, c.offset, got, c.want)
		}
	}
	if v, _, _ := r.Latest(); v.Version != 2 || len(r.List()) != 2 {
		t.Fatalf("latest %d of %d versions", v.Version, len(r.List()))
	}

	// Wait returns a version as soon as it arrives, as a detector does for a marker read before its version.
	v3 := version(t, 3, "300", nil)
	go func() {
		time.Sleep(10 * time.Millisecond) // only makes the waiter likely to wait; the test holds either way
		r.apply([]byte(Key(3)), v3)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := r.Wait(ctx, 3)
	if err != nil || rs.Number != 3 || rs.Rules[0].Limit != 300 {
		t.Fatalf("wait: %v %+v", err, rs)
	}
}
