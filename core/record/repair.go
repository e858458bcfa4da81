package record

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Repair makes what consumers and later runs read agree with cur, the current record of its
// image: the index entry of its fingerprint and the .txt. A save interrupted after the
// current record leaves them behind; nothing else would ever fix them. It returns what it
// rewrote, in words, for the plan's reasons.
func (s *Store) Repair(ctx context.Context, cur *Record) ([]string, error) {
	if cur == nil {
		return nil, nil
	}
	var did []string
	ix, ixTag, err := s.read(ctx, s.indexKey(cur.Image, cur.Fingerprint), cur.Image, cur.Fingerprint)
	if err != nil {
		return nil, err
	}
	if ix == nil || (ix.AMI() != cur.AMI() && cur.BuiltAt.After(ix.BuiltAt)) {
		if err := s.writeIndex(ctx, cur, ixTag); err != nil {
			return nil, err
		}
		was := "it was missing"
		if ix != nil {
			was = "it named " + ix.AMI() + ", built before"
		}
		did = append(did, fmt.Sprintf("repaired the index entry of %s (%s): now %s, as the record", cur.Image, was, cur.AMI()))
	}
	key := s.textKey(cur.Image)
	text, err := s.readText(ctx, key)
	if err != nil {
		return nil, err
	}
	if text != cur.AMI()+"\n" {
		if _, err := s.put(ctx, key, []byte(cur.AMI()+"\n"), "text/plain; charset=utf-8", "", false); err != nil {
			return nil, s.fail("write", key, err)
		}
		was := "it was missing"
		if text != "" {
			was = fmt.Sprintf("it said %q", strings.TrimSpace(text))
		}
		did = append(did, fmt.Sprintf("repaired %s (%s): now %s, as the record", s.url(key), was, cur.AMI()))
	}
	return did, nil
}

// writeIndex writes r as the index entry of its fingerprint, replacing the version with etag
// ("" = absent). Losing that race is fine: another run wrote the entry meanwhile.
func (s *Store) writeIndex(ctx context.Context, r *Record, etag string) error {
	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record for image %q: %w", r.Image, err)
	}
	key := s.indexKey(r.Image, r.Fingerprint)
	if _, err := s.put(ctx, key, append(body, '\n'), "application/json", etag, etag == ""); err != nil && !isConflict(err) {
		return s.fail("write", key, err)
	}
	return nil
}

// readText returns the .txt at key, "" when there is none.
func (s *Store) readText(ctx context.Context, key string) (string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if apiCode(err) == "NoSuchKey" || httpStatus(err) == http.StatusNotFound {
			return "", nil
		}
		return "", s.fail("read", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 1<<10))
	if err != nil {
		return "", s.fail("read", key, err)
	}
	return string(data), nil
}
