package detector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/fraudpipe/fraudpipe/rules"
)

type noVersions struct{}

func (noVersions) At(int32, int64) *rules.Ruleset { return nil }
func (noVersions) Wait(ctx context.Context, n int) (*rules.Ruleset, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// failCtx is the part of goka.Context waitVersion uses.
type failCtx struct{ baseContext }

type baseContext interface{ goka.Context }

func (failCtx) Context() context.Context { return context.Background() }
func (failCtx) Fail(err error)           { panic(err) }

// A record naming a ruleset version that never comes fails after VersionWait instead of holding its partition.
func TestUnknownRulesetVersionFailsTheRecordInsteadOfWaitingForever(t *testing.T) {
	d := &detector{Config: Config{Versions: noVersions{}, VersionWait: 50 * time.Millisecond}}
	var failed any
	func() {
		defer func() { failed = recover() }()
		d.waitVersion(failCtx{}, 99)
	}()
	err, _ := failed.(error)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitVersion of a version that never comes: %v", failed)
	}
}
