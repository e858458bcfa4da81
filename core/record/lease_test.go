package record_test

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/record"
)

func TestLease(t *testing.T) {
	now := time.Now()
	const ttl = time.Minute
	tests := []struct {
		name string
		// before sets up the lease as the other run "a" left it.
		before     func(t *testing.T, s *record.Store, a *record.Lease)
		at         time.Time // when run "b" tries
		wantHolder string    // who holds it after b tried
	}{
		{name: "held: b waits", at: now.Add(ttl / 2), wantHolder: "a"},
		{name: "expired: b takes it over", at: now.Add(ttl + time.Second), wantHolder: "b"},
		{name: "released: b takes it at once", at: now.Add(time.Second), wantHolder: "b",
			before: func(t *testing.T, s *record.Store, a *record.Lease) { assert.NilError(t, s.Release(t.Context(), a)) }},
		{name: "renewed: b still waits after the first expiry", at: now.Add(ttl + time.Second), wantHolder: "a",
			before: func(t *testing.T, s *record.Store, a *record.Lease) {
				assert.NilError(t, s.Renew(t.Context(), a, ttl, now.Add(ttl/2)))
			}},
	}
	for _, srv := range servers() {
		t.Run(srv.name, func(t *testing.T) {
			server := srv.start(t)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s := record.NewStore(server.Client, record.Config{Bucket: server.Bucket, Prefix: t.Name()})
					a, theirs, err := s.Acquire(t.Context(), "base", "fp1", "a", ttl, now)
					assert.NilError(t, err)
					assert.Assert(t, a != nil && theirs == nil)
					if tc.before != nil {
						tc.before(t, s, a)
					}
					b, theirs, err := s.Acquire(t.Context(), "base", "fp1", "b", ttl, tc.at)
					assert.NilError(t, err)
					cur, err := s.LeaseOf(t.Context(), "base", "fp1")
					assert.NilError(t, err)
					assert.Equal(t, cur.Holder, tc.wantHolder)
					if tc.wantHolder == "a" {
						assert.Assert(t, b == nil && theirs.Holder == "a")
						return
					}
					assert.Assert(t, b != nil)
					// a's lease is gone: renewing or releasing it must not touch b's.
					assert.ErrorIs(t, s.Renew(t.Context(), a, ttl, tc.at), record.ErrLeaseLost)
					cur, err = s.LeaseOf(t.Context(), "base", "fp1")
					assert.NilError(t, err)
					assert.Equal(t, cur.Holder, "b")
				})
			}
		})
	}
}
