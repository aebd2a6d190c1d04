package detector

import (
	"context"
	"time"

	"github.com/lovoo/goka"

	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/rules"
)

// waitVersion returns ruleset version n for the record in ctx, waiting for the registry to read it. A version that
// does not come (a forged loop record or switch marker, a version written by hand that the registry refused) would
// hold the partition forever without a word: after VersionWait the record fails instead, and the guard retries it
// a bounded number of times before its policy applies.
func (d *detector) waitVersion(ctx goka.Context, n int) *rules.Ruleset {
	if rs := d.looped.Load(); rs != nil && rs.Number == n {
		return rs
	}
	wait := d.VersionWait
	if wait <= 0 {
		wait = time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx.Context(), wait)
	defer cancel()
	rs, err := d.Versions.Wait(wctx, n)
	if err != nil {
		processors.PanicFail(ctx, err)
	}
	d.looped.Store(rs)
	return rs
}
