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
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/amichain/amichain/core/awsio"
)

// ErrCorrupt marks a stored object that is not a valid record of the key it is stored under.
var ErrCorrupt = errors.New("not a valid amichain record")

// maxAttempts bounds the conditional-write retries when other runs keep changing a key.
const maxAttempts = 5

// Config says where records are kept.
type Config struct {
	Bucket string
	// Prefix is prepended to every key; may be empty.
	Prefix string
}

// Store reads and writes records in one bucket:
//
//	PREFIX/images/NAME.json                  the current record of an image
//	PREFIX/NAME.txt                          its AMI id in the build region, for Make consumers
//	PREFIX/index/NAME/FINGERPRINT.json       the record built for that content
//
// Objects are written without an ACL, so they stay private to the bucket owner.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
}

// NewStore returns a store over client.
func NewStore(client *s3.Client, cfg Config) *Store {
	return &Store{client: client, bucket: cfg.Bucket, prefix: strings.Trim(cfg.Prefix, "/")}
}

func (s *Store) currentKey(image string) string { return path.Join(s.prefix, "images", image+".json") }
func (s *Store) textKey(image string) string    { return path.Join(s.prefix, image+".txt") }
func (s *Store) indexKey(image, fingerprint string) string {
	return path.Join(s.prefix, "index", image, fingerprint+".json")
}

func (s *Store) url(key string) string { return "s3://" + s.bucket + "/" + key }

// Current returns the current record of image, or nil when it has none.
func (s *Store) Current(ctx context.Context, image string) (*Record, error) {
	if !validImage.MatchString(image) {
		return nil, fmt.Errorf("image name %q: use lower-case letters, digits and dashes, as in amichain.yaml", image)
	}
	r, _, err := s.read(ctx, s.currentKey(image), image, "")
	return r, err
}

// ByFingerprint returns the record built for image with that fingerprint, or nil when none was.
func (s *Store) ByFingerprint(ctx context.Context, image, fingerprint string) (*Record, error) {
	if !validImage.MatchString(image) {
		return nil, fmt.Errorf("image name %q: use lower-case letters, digits and dashes, as in amichain.yaml", image)
	}
	if !validFingerprint.MatchString(fingerprint) {
		return nil, fmt.Errorf("image %q: fingerprint %q: want letters, digits and '.:_-' (at most 200)", image, fingerprint)
	}
	r, _, err := s.read(ctx, s.indexKey(image, fingerprint), image, fingerprint)
	return r, err
}

// List returns the current records of all images, sorted by image name.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	dir := path.Join(s.prefix, "images") + "/"
	var records []Record
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &dir})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list", dir, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			image, ok := strings.CutSuffix(strings.TrimPrefix(key, dir), ".json")
			if !ok || !validImage.MatchString(image) {
				continue // not a key amichain writes
			}
			r, _, err := s.read(ctx, key, image, "")
			if err != nil {
				return nil, err
			}
			if r != nil { // deleted since the listing
				records = append(records, *r)
			}
		}
	}
	sort.Slice(records, func(i, j int) bool { return records[i].Image < records[j].Image })
	return records, nil
}

// Save records r as built: its index entry (replaced only by a later build of the same
// content), then the current record of its image, then the .txt: an interrupted save leaves
// at worst a stale .txt or index entry, which Repair detects and rewrites. The current record is replaced
// by a conditional write, so a run never replaces a version it has not read; a corrupt one is
// reported, not overwritten. An invalid record is refused before anything is written.
func (s *Store) Save(ctx context.Context, r Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("refusing to save: %w", err)
	}
	if r.PrunedAt != nil {
		return fmt.Errorf("refusing to save: AMI %s of image %q was pruned on %s: it is never made current again (build the image instead)",
			r.AMI(), r.Image, r.PrunedAt.UTC().Format(time.RFC3339))
	}
	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record for image %q: %w", r.Image, err)
	}
	body = append(body, '\n')
	// Read first: an unreachable bucket or a corrupt current record stops us before any write.
	_, etag, err := s.read(ctx, s.currentKey(r.Image), r.Image, "")
	if err != nil {
		return err
	}
	if err := s.saveIndex(ctx, &r, body); err != nil {
		return err
	}
	etag, err = s.replaceCurrent(ctx, r.Image, body, etag)
	if err != nil {
		return err
	}
	return s.writeText(ctx, &r, etag)
}

// saveIndex writes r as the index entry of its fingerprint unless the entry there is r or a
// build at least as recent, so that a revert reuses the newest AMI built from that content.
func (s *Store) saveIndex(ctx context.Context, r *Record, body []byte) error {
	key := s.indexKey(r.Image, r.Fingerprint)
	_, err := s.put(ctx, key, body, "application/json", "", true)
	if err == nil {
		return nil
	}
	if httpStatus(err) != http.StatusPreconditionFailed {
		return s.fail("write", key, err)
	}
	ix, etag, err := s.read(ctx, key, r.Image, r.Fingerprint)
	if err != nil {
		return err
	}
	if ix != nil && (ix.AMI() == r.AMI() || !r.BuiltAt.After(ix.BuiltAt)) {
		return nil
	}
	return s.writeIndex(ctx, r, etag)
}

// replaceCurrent writes body as the current record if it is still the version with etag
// ("" = absent), re-reading and retrying when another run changed it meanwhile.
func (s *Store) replaceCurrent(ctx context.Context, image string, body []byte, etag string) (string, error) {
	key := s.currentKey(image)
	for attempt := 1; ; attempt++ {
		newTag, err := s.put(ctx, key, body, "application/json", etag, etag == "")
		if err == nil {
			return newTag, nil
		}
		if !isConflict(err) {
			return "", s.fail("write", key, err)
		}
		if attempt == maxAttempts {
			return "", fmt.Errorf("write %s: refused %d times as changed meanwhile: other amichain runs are writing it, run again "+
				"(if it keeps failing and the key reads as absent, the server refuses to recreate deleted keys: remove its delete marker)", s.url(key), attempt)
		}
		if _, etag, err = s.read(ctx, key, image, ""); err != nil {
			return "", err
		}
	}
}

// writeText writes the AMI id of r, the current record written with etag. If another run
// replaced the current record meanwhile, its .txt may have been overwritten by ours, so write
// the .txt again from whatever is current until they agree.
func (s *Store) writeText(ctx context.Context, r *Record, etag string) error {
	key := s.textKey(r.Image)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if _, err := s.put(ctx, key, []byte(r.AMI()+"\n"), "text/plain; charset=utf-8", "", false); err != nil {
			return s.fail("write", key, err)
		}
		cur, curTag, err := s.read(ctx, s.currentKey(r.Image), r.Image, "")
		if err != nil {
			return err
		}
		if cur == nil || curTag == etag {
			return nil
		}
		r, etag = cur, curTag
	}
	return fmt.Errorf("write %s: the current record changed %d times while saving (other amichain runs are writing it): run again", s.url(key), maxAttempts)
}

// put writes body to key, only if its ETag is ifMatch (when set) or only if absent (ifNone).
func (s *Store) put(ctx context.Context, key string, body []byte, contentType, ifMatch string, ifNone bool) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:      &s.bucket,
		Key:         &key,
		Body:        bytes.NewReader(body),
		ContentType: &contentType,
	}
	if ifMatch != "" {
		in.IfMatch = &ifMatch
	}
	if ifNone {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// read fetches and checks the record at key with its ETag; nil when there is none.
func (s *Store) read(ctx context.Context, key, image, fingerprint string) (*Record, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if apiCode(err) == "NoSuchKey" {
			return nil, "", nil
		}
		return nil, "", s.fail("read", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", s.fail("read", key, err)
	}
	r, err := decode(data, image, fingerprint)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", s.url(key), err)
	}
	return r, aws.ToString(out.ETag), nil
}

// decode parses a stored record strictly and checks it belongs where it was found.
func decode(data []byte, image, fingerprint string) (*Record, error) {
	const hint = "inspect it; delete it to let amichain rebuild and rewrite it"
	var r Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v: %s", ErrCorrupt, err, hint)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object: %s", ErrCorrupt, hint)
	}
	if r.Scheme > Scheme {
		return nil, fmt.Errorf("written by a newer amichain (scheme %d, this one understands %d): upgrade amichain, or %s", r.Scheme, Scheme, hint)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v: %s", ErrCorrupt, err, hint)
	}
	if r.Image != image {
		return nil, fmt.Errorf("%w: it is for image %q, stored as image %q: %s", ErrCorrupt, r.Image, image, hint)
	}
	if fingerprint != "" && r.Fingerprint != fingerprint {
		return nil, fmt.Errorf("%w: it has fingerprint %q, stored under %q: %s", ErrCorrupt, r.Fingerprint, fingerprint, hint)
	}
	return &r, nil
}

// fail wraps an S3 error with the object it concerns and what to do about it.
func (s *Store) fail(op, key string, err error) error {
	if apiCode(err) == "NoSuchBucket" {
		return fmt.Errorf("%s %s: bucket %q does not exist: create it or fix --bucket: %w", op, s.url(key), s.bucket, err)
	}
	switch awsio.Classify(err) {
	case awsio.Denied:
		return fmt.Errorf("%s %s: access denied: check the AWS credentials and that they may read, write and list s3://%s/%s: %w",
			op, s.url(key), s.bucket, s.prefix, err)
	case awsio.Credentials:
		return fmt.Errorf("%s %s: access denied: check the AWS credentials: they were refused (wrong, expired or revoked keys or session token): %w",
			op, s.url(key), err)
	case awsio.Unreachable:
		return fmt.Errorf("%s %s: cannot reach the S3 endpoint: check --endpoint and the network, then run again: %w", op, s.url(key), err)
	case awsio.ServerError:
		return fmt.Errorf("%s %s: the S3 server keeps failing: run again later (saving again is safe): %w", op, s.url(key), err)
	case awsio.Other:
		var sendErr *smithyhttp.RequestSendError
		if errors.As(err, &sendErr) {
			return fmt.Errorf("%s %s: cannot reach the S3 endpoint: check --endpoint and the network, then run again: %w", op, s.url(key), err)
		}
		return fmt.Errorf("%s %s: %w", op, s.url(key), err)
	}
	return fmt.Errorf("%s %s: %s: %w", op, s.url(key), awsio.Hint(err, "S3", awsio.Limits{}), err)
}

// isConflict reports a failed precondition: another writer got there first. AWS answers 409
// to concurrent conditional writes and 404 to If-Match on an object deleted meanwhile.
func isConflict(err error) bool {
	switch httpStatus(err) {
	case http.StatusPreconditionFailed, http.StatusConflict:
		return true
	}
	return apiCode(err) == "NoSuchKey"
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
