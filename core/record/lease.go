package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ErrLeaseLost is returned by Renew when another run took the lease over: this run's lease
// had expired (it could not renew in time) and the build may now run twice.
var ErrLeaseLost = errors.New("lease taken over by another run")

// Lease is the right to build one fingerprint of one image, held by one run until it expires.
// It is an object in the bucket, PREFIX/leases/IMAGE/FINGERPRINT.json, taken with
// If-None-Match: * and renewed, released or taken over with If-Match, so that two runs
// never both believe they hold it.
type Lease struct {
	Image       string    `json:"image"`
	Fingerprint string    `json:"fingerprint"`
	Holder      string    `json:"holder"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Released is set by the holder when it is done (built and recorded, or failed).
	Released bool `json:"released,omitempty"`

	etag string
}

// Free reports whether the lease may be taken: released, or expired at now.
func (l *Lease) Free(now time.Time) bool { return l.Released || !now.Before(l.ExpiresAt) }

func (s *Store) leaseKey(image, fingerprint string) string {
	return path.Join(s.prefix, "leases", image, fingerprint+".json")
}

// Acquire takes the lease on (image, fingerprint) for holder until now+ttl: it creates it,
// or takes it over when it is released or expired. When another run holds it, Acquire
// returns nil and that run's lease, so the caller can say whom it waits for.
func (s *Store) Acquire(ctx context.Context, image, fingerprint, holder string, ttl time.Duration, now time.Time) (mine, theirs *Lease, err error) {
	if !validImage.MatchString(image) || !validFingerprint.MatchString(fingerprint) {
		return nil, nil, fmt.Errorf("lease for image %q, fingerprint %q: not a valid image name and fingerprint", image, fingerprint)
	}
	key := s.leaseKey(image, fingerprint)
	l := &Lease{Image: image, Fingerprint: fingerprint, Holder: holder, ExpiresAt: now.Add(ttl).UTC()}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		cur, err := s.readLease(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		ifMatch := ""
		if cur != nil {
			if !cur.Free(now) {
				return nil, cur, nil
			}
			ifMatch = cur.etag
		}
		etag, err := s.putLease(ctx, key, l, ifMatch)
		if err == nil {
			l.etag = etag
			return l, nil, nil
		}
		if !isConflict(err) {
			return nil, nil, s.fail("write", key, err)
		}
		// Another run took or renewed it between our read and write: read again.
	}
	return nil, nil, fmt.Errorf("take lease %s: it changed %d times meanwhile (other amichain runs are contending): run again", s.url(key), maxAttempts)
}

// Renew extends l to now+ttl. ErrLeaseLost means another run holds it now.
func (s *Store) Renew(ctx context.Context, l *Lease, ttl time.Duration, now time.Time) error {
	next := *l
	next.ExpiresAt = now.Add(ttl).UTC()
	return s.replaceLease(ctx, l, &next)
}

// Release gives l up, so that a waiting run may go on at once instead of at its expiry.
func (s *Store) Release(ctx context.Context, l *Lease) error {
	next := *l
	next.Released = true
	return s.replaceLease(ctx, l, &next)
}

// Holds reports whether run holds the lease on (image, fingerprint), unreleased and
// unexpired at now: whether that run is, as far as the bucket knows, still building it.
func (s *Store) Holds(ctx context.Context, run, image, fingerprint string, now time.Time) (bool, error) {
	l, err := s.LeaseOf(ctx, image, fingerprint)
	if err != nil || l == nil {
		return false, err
	}
	return l.Holder == run && !l.Free(now), nil
}

// LeaseOf reads the lease on (image, fingerprint); nil when there is none.
func (s *Store) LeaseOf(ctx context.Context, image, fingerprint string) (*Lease, error) {
	return s.readLease(ctx, s.leaseKey(image, fingerprint))
}

func (s *Store) replaceLease(ctx context.Context, l, next *Lease) error {
	key := s.leaseKey(l.Image, l.Fingerprint)
	etag, err := s.putLease(ctx, key, next, l.etag)
	if err != nil {
		if isConflict(err) {
			return fmt.Errorf("%s: %w", s.url(key), ErrLeaseLost)
		}
		return s.fail("write", key, err)
	}
	*l = *next
	l.etag = etag
	return nil
}

func (s *Store) putLease(ctx context.Context, key string, l *Lease, ifMatch string) (string, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("encode lease: %w", err)
	}
	return s.put(ctx, key, body, "application/json", ifMatch, ifMatch == "")
}

func (s *Store) readLease(ctx context.Context, key string) (*Lease, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if apiCode(err) == "NoSuchKey" || httpStatus(err) == http.StatusNotFound {
			return nil, nil
		}
		return nil, s.fail("read", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.fail("read", key, err)
	}
	var l Lease
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&l); err != nil {
		// A lease that cannot be read is treated as expired: it only guards against double work.
		return &Lease{etag: aws.ToString(out.ETag)}, nil
	}
	l.etag = aws.ToString(out.ETag)
	return &l, nil
}
