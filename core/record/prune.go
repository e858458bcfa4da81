package record

import (
	"context"
	"fmt"
	"time"
)

// MarkPruned marks the index entry of (image, fingerprint) as pruned when it names ami in
// region, so that no run reuses it once the AMI is deregistered. It reports whether it
// marked one; an entry naming another AMI (a later build) is left alone.
func (s *Store) MarkPruned(ctx context.Context, image, fingerprint, region, ami string, at time.Time) (bool, error) {
	if !validImage.MatchString(image) || !validFingerprint.MatchString(fingerprint) {
		return false, fmt.Errorf("mark pruned: image %q fingerprint %q: not a key amichain writes", image, fingerprint)
	}
	key := s.indexKey(image, fingerprint)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		ix, etag, err := s.read(ctx, key, image, fingerprint)
		if err != nil {
			return false, err
		}
		if ix == nil || ix.AMIs[region] != ami {
			return false, nil
		}
		if ix.PrunedAt != nil {
			return true, nil
		}
		at := at.UTC()
		ix.PrunedAt = &at
		err = s.writeIndex(ctx, ix, etag)
		if err != nil {
			return false, err
		}
		// writeIndex accepts losing a race: read again to be sure the mark is there.
		if again, _, err := s.read(ctx, key, image, fingerprint); err == nil && again != nil && again.PrunedAt != nil {
			return true, nil
		}
	}
	return false, fmt.Errorf("mark %s pruned: the index entry changed %d times meanwhile (other amichain runs are writing it): run again", s.url(key), maxAttempts)
}
