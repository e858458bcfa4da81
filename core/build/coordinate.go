package build

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
)

// Leases are the bucket's build leases; *record.Store is the real one.
type Leases interface {
	Acquire(ctx context.Context, image, fingerprint, holder string, ttl time.Duration, now time.Time) (mine, theirs *record.Lease, err error)
	Renew(ctx context.Context, l *record.Lease, ttl time.Duration, now time.Time) error
	Release(ctx context.Context, l *record.Lease) error
}

// Coordination makes runs that share a bucket build each (image, fingerprint) once, and makes
// a finished build survive cancellation and S3 blips.
type Coordination struct {
	// Leases, when set, make a run take a lease before building a stale image. A run that finds
	// the lease held waits for the holder's record and uses it, or takes over the lease once it
	// is released or expired (its holder died).
	Leases Leases
	// RunID names this run in the leases it holds (and, by the caller, in the builder's tags).
	RunID string
	// LeaseTTL is how long a lease lasts unless renewed; the holder renews it every third of
	// it, so a dead holder blocks others (and keeps its builder from the janitor) for at most
	// this long. Default 3 minutes.
	LeaseTTL time.Duration
	// PollInterval is how often a waiting run looks for the holder's record. Default 15 s.
	PollInterval time.Duration
	// SaveRetry is how long recording a built AMI keeps retrying, even after ctx is cancelled:
	// the build cost far more than the wait. Default 10 minutes.
	SaveRetry time.Duration
}

const (
	defaultLeaseTTL     = 3 * time.Minute
	defaultPollInterval = 15 * time.Second
	defaultSaveRetry    = 10 * time.Minute
	// releaseTimeout bounds giving a lease up once the work is done, cancelled or not.
	releaseTimeout = 30 * time.Second
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// settle builds a stale step, or, when another run holds its lease, waits and uses what it built.
func (e *Executor) settle(ctx context.Context, step plan.Step, out Outcome, slots chan struct{}) Outcome {
	if e.Leases == nil {
		return e.build(ctx, step, out, slots)
	}
	ttl, poll := orDefault(e.LeaseTTL, defaultLeaseTTL), orDefault(e.PollInterval, defaultPollInterval)
	name, fp := step.Image.Name, step.Fingerprint.Sum
	var waitedFor string
	for {
		mine, theirs, err := e.Leases.Acquire(ctx, name, fp, e.RunID, ttl, time.Now())
		if err != nil {
			return failed(out, fmt.Errorf("take the build lease: %w", err))
		}
		if mine != nil {
			defer e.release(ctx, mine)
			// The previous holder may have finished between our plan and now.
			if o, ok := e.builtMeanwhile(ctx, step, out, waitedFor); ok {
				return o
			}
			stop := e.renew(ctx, mine, ttl)
			o := e.build(ctx, step, out, slots)
			if stop() {
				o.Reasons = append(o.Reasons, "lease lost while building: another run may have built it too")
			}
			return o
		}
		waitedFor = theirs.Holder
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return failed(out, fmt.Errorf("waiting for run %s to build %s: %w", theirs.Holder, name, ctx.Err()))
		}
		if o, ok := e.builtMeanwhile(ctx, step, out, waitedFor); ok {
			return o
		}
	}
}

// builtMeanwhile reports whether another run recorded this step's fingerprint since it was
// planned, and if so settles the step with that AMI instead of building it again.
func (e *Executor) builtMeanwhile(ctx context.Context, step plan.Step, out Outcome, holder string) (Outcome, bool) {
	by := "another run"
	if holder != "" {
		by = "run " + holder
	}
	cur, err := e.Records.Current(ctx, step.Image.Name)
	if err != nil {
		return failed(out, err), true
	}
	if cur != nil && cur.Fingerprint == step.Fingerprint.Sum && !sameBuild(cur, step.Current) {
		out.Status, out.Region, out.AMIs = UpToDate, cur.Region, cur.AMIs
		out.Reasons = append(out.Reasons, fmt.Sprintf("built meanwhile by %s", by))
		return out, true
	}
	if e.Planner.Force[step.Image.Name] {
		return out, false
	}
	again, err := e.Planner.Step(ctx, step.Image, step.ParentAMI)
	if err != nil {
		return failed(out, err), true
	}
	switch again.Status {
	case plan.UpToDate:
		out.Status, out.Region, out.AMIs = UpToDate, again.Match.Region, again.Match.AMIs
		out.Reasons = append(out.Reasons, fmt.Sprintf("built meanwhile by %s", by))
		return out, true
	case plan.Reuse:
		if err := e.Records.Save(ctx, *again.Match); err != nil {
			return failed(out, fmt.Errorf("record reused AMI: %w", err)), true
		}
		out.Status, out.Region, out.AMIs = Reused, again.Match.Region, again.Match.AMIs
		out.Reasons = append(out.Reasons, fmt.Sprintf("built meanwhile by %s", by))
		return out, true
	}
	return out, false
}

func sameBuild(a, b *record.Record) bool {
	return b != nil && a.AMI() == b.AMI() && a.BuiltAt.Equal(b.BuiltAt)
}

// renew keeps l alive until the returned stop is called; stop reports whether it was lost.
func (e *Executor) renew(ctx context.Context, l *record.Lease, ttl time.Duration) (stop func() bool) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lost := make(chan bool, 1)
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				lost <- false
				return
			case <-t.C:
				// A failed renewal is retried at the next tick; only a takeover ends it.
				rctx, rcancel := context.WithTimeout(ctx, ttl/3)
				err := e.Leases.Renew(rctx, l, ttl, time.Now())
				rcancel()
				if errors.Is(err, record.ErrLeaseLost) {
					lost <- true
					return
				}
			}
		}
	}()
	return func() bool {
		cancel()
		return <-lost
	}
}

// release gives the lease up whether or not ctx was cancelled, so waiting runs go on at once.
// A lease that cannot be released expires on its own.
func (e *Executor) release(ctx context.Context, l *record.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_ = e.Leases.Release(ctx, l)
}

// saveBuilt records a built AMI. The AMI exists whatever happens next, so the save ignores
// cancellation and retries with backoff for SaveRetry; if it still fails, the error names the
// AMI and how to record it later.
func (e *Executor) saveBuilt(ctx context.Context, rec record.Record) error {
	limit := orDefault(e.SaveRetry, defaultSaveRetry)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	defer cancel()
	backoff := min(limit/20, time.Second)
	var err error
	for {
		if err = e.Records.Save(ctx, rec); err == nil || errors.Is(err, record.ErrCorrupt) {
			break
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 30*time.Second)
			continue
		case <-ctx.Done():
		}
		break
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("built %s (%s) but could not record it, retried for %s: %w; "+
		"the AMI carries its amichain tags: once S3 answers, record it with adopt (AMI %s, region %s) instead of building it again",
		rec.AMI(), rec.Region, limit, err, rec.AMI(), rec.Region)
}
