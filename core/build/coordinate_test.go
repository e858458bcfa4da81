package build_test

import (
	"context"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

func outcome(sum build.Summary, image string) build.Outcome {
	for _, o := range sum.Outcomes {
		if o.Image == image {
			return o
		}
	}
	return build.Outcome{}
}

// baseFingerprint plans once to learn the fingerprint base will be built with.
func baseFingerprint(t *testing.T, ex *build.Executor) string {
	p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "base")
	assert.NilError(t, err)
	return p.Steps[0].Fingerprint.Sum
}

func TestLeaseHeldByAnotherRun(t *testing.T) {
	tests := []struct {
		name string
		// other plays the run holding base's lease; it returns what base must end as.
		other      func(t *testing.T, store *record.Store, l *record.Lease, fp string)
		wantStatus []build.Status
		wantBuilt  bool
		wantReason string
	}{
		{
			name: "holder records and releases: its AMI is used",
			other: func(t *testing.T, store *record.Store, l *record.Lease, fp string) {
				time.Sleep(100 * time.Millisecond)
				r := record.Record{Scheme: record.Scheme, Image: "base", Fingerprint: fp, Region: "us-east-1",
					AMIs: map[string]string{"us-east-1": "ami-0123456789abcdef0"}, ParentAMI: upstreamAMI, BuiltAt: time.Now().UTC()}
				assert.NilError(t, store.Save(context.Background(), r))
				assert.NilError(t, store.Release(context.Background(), l))
			},
			// Up to date, or reused when it looks between the holder's index and record writes.
			wantStatus: []build.Status{build.UpToDate, build.Reused}, wantReason: "built meanwhile by run other",
		},
		{
			name: "holder fails and releases: this run builds",
			other: func(t *testing.T, store *record.Store, l *record.Lease, fp string) {
				time.Sleep(100 * time.Millisecond)
				assert.NilError(t, store.Release(context.Background(), l))
			},
			wantStatus: []build.Status{build.Built}, wantBuilt: true,
		},
		{name: "holder dies: its lease expires and is taken over", wantStatus: []build.Status{build.Built}, wantBuilt: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := s3test.StartFake(t)
			store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
			b := &amiBuilder{ec2: startEC2(t), sleep: 10 * time.Millisecond}
			ex := coordinatedRun(t, repotest.Copy(t), store, b, "mine")
			fp := baseFingerprint(t, ex)
			l, _, err := store.Acquire(t.Context(), "base", fp, "other", 500*time.Millisecond, time.Now())
			assert.NilError(t, err)
			assert.Assert(t, l != nil)
			otherDone := make(chan struct{})
			if tc.other != nil {
				go func() {
					defer close(otherDone)
					tc.other(t, store, l, fp)
				}()
			} else {
				close(otherDone)
			}
			p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "base")
			assert.NilError(t, err)
			sum, err := ex.Run(t.Context(), p)
			assert.NilError(t, err)
			o := outcome(sum, "base")
			assert.Assert(t, is.Contains(tc.wantStatus, o.Status))
			assert.Equal(t, len(b.built) == 1, tc.wantBuilt, "built %v", b.built)
			if tc.wantReason != "" {
				assert.Assert(t, is.Contains(o.Reasons, tc.wantReason))
			}
			cur, err := store.Current(t.Context(), "base")
			assert.NilError(t, err)
			assert.Equal(t, cur.AMI(), o.AMI())
			// The holder may see its record used before it has released: wait for it.
			<-otherDone
			lease, err := store.LeaseOf(t.Context(), "base", fp)
			assert.NilError(t, err)
			assert.Assert(t, lease.Free(time.Now()), "lease left held: %+v", lease)
		})
	}
}

// cancellingBuilder succeeds, then cancels the run's context before the executor records.
type cancellingBuilder struct {
	amiBuilder
	cancel context.CancelFunc
}

func (b *cancellingBuilder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	res, err := b.amiBuilder.Build(ctx, req)
	b.cancel()
	return res, err
}

func TestFinishedBuildIsRecordedWhenCancelledAfterPacker(t *testing.T) {
	srv := s3test.StartFake(t)
	store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
	ctx, cancel := context.WithCancel(t.Context())
	b := &cancellingBuilder{amiBuilder: amiBuilder{ec2: startEC2(t)}, cancel: cancel}
	ex := coordinatedRun(t, repotest.Copy(t), store, b, "mine")
	p, err := ex.Planner.Plan(ctx, upstreamAMI, "base")
	assert.NilError(t, err)
	sum, _ := ex.Run(ctx, p)
	assert.Equal(t, outcome(sum, "base").Status, build.Built)
	cur, err := store.Current(t.Context(), "base")
	assert.NilError(t, err)
	assert.Equal(t, cur.AMI(), b.amis[0])
}

// blipBuilder makes S3 fail for a while once the build is done.
type blipBuilder struct {
	amiBuilder
	proxy *s3test.Proxy
	fails int
}

func (b *blipBuilder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	res, err := b.amiBuilder.Build(ctx, req)
	b.proxy.FailNext(b.fails)
	return res, err
}

func TestSaveAfterBuildRetries(t *testing.T) {
	tests := []struct {
		name    string
		fails   int
		wantErr []string
	}{
		{name: "a blip is ridden out", fails: 8},
		{name: "an outage names the AMI and how to record it", fails: 1 << 20,
			wantErr: []string{"could not record it, retried for 1s", "adopt (AMI ami-", "region us-east-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := s3test.StartFake(t)
			proxy := s3test.StartProxy(t, srv.Endpoint)
			store := record.NewStore(srv.ClientAt(proxy.URL), record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
			b := &blipBuilder{amiBuilder: amiBuilder{ec2: startEC2(t)}, proxy: proxy, fails: tc.fails}
			ex := coordinatedRun(t, repotest.Copy(t), store, b, "mine")
			ex.SaveRetry = time.Second
			p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "base")
			assert.NilError(t, err)
			sum, err := ex.Run(t.Context(), p)
			o := outcome(sum, "base")
			if tc.wantErr == nil {
				assert.NilError(t, err)
				assert.Equal(t, o.Status, build.Built)
				return
			}
			assert.Equal(t, o.Status, build.Failed)
			for _, w := range tc.wantErr {
				assert.ErrorContains(t, o.Err, w)
			}
			assert.ErrorContains(t, o.Err, b.amis[0])
		})
	}
}
