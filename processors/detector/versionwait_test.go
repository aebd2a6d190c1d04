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

// someVersions knows versions 1 and 2 and counts the lookups that reach it.
type someVersions struct{ waits int }

func (*someVersions) At(int32, int64) *rules.Ruleset { return nil }
func (v *someVersions) Wait(ctx context.Context, n int) (*rules.Ruleset, error) {
	v.waits++
	if n == 1 || n == 2 {
		return &rules.Ruleset{Number: n}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// Loop records mostly name the version the one before named: that one is answered without asking the registry,
// and a record naming another version still gets its own.
func TestLoopRecordsGetTheVersionTheyName(t *testing.T) {
	v := &someVersions{}
	d := &detector{Config: Config{Versions: v, VersionWait: 50 * time.Millisecond}}
	for i, n := range []int{1, 1, 1, 2, 2, 1} {
		if got := d.waitVersion(failCtx{}, n); got.Number != n {
			t.Fatalf("record %d naming version %d got version %d", i, n, got.Number)
		}
	}
	if v.waits != 3 { // 1, 2, 1: each change of version asks once
		t.Fatalf("the registry was asked %d times for 6 records in 3 runs of one version, want 3", v.waits)
	}
}
