// Package s3test starts real S3 servers for tests: gofakes3 in-process over HTTP on loopback,
// and versitygw (a real S3 gateway that checks signatures) as a process. It also has a proxy
// that injects faults and records the requests a client sends.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Region is the region the test servers accept in signatures.
const Region = "us-east-1"

// Server is a running S3 server with one bucket. The bucket is not versioned: versitygw v1.8.0
// refuses If-None-Match: * on a key whose latest version is a delete marker, so a deleted
// record could never be written again there (AWS S3 allows it).
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:PORT.
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	// ChecksSignatures is false for gofakes3, which accepts any credentials.
	ChecksSignatures bool
	// Client talks to Endpoint with the server's credentials.
	Client *s3.Client
	// PID is the server's process id; 0 when it runs in the test's own process.
	PID int
}

// ClientAt returns a client with the server's credentials for another endpoint, such as a
// Proxy in front of the server or a closed port.
func (s *Server) ClientAt(endpoint string) *s3.Client {
	return NewClient(endpoint, s.AccessKey, s.SecretKey)
}

// NewClient returns a path-style client with static credentials, configured as the test
// servers need. Retries keep the SDK's count but back off briefly so fault tests stay fast.
func NewClient(endpoint, accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		// gofakes3 would store the aws-chunked framing of streamed checksums as content.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxBackoff = 20 * time.Millisecond
		}),
	})
}

// StartFake serves gofakes3 with an in-memory backend over HTTP on loopback until the test ends.
func StartFake(t testing.TB) *Server {
	t.Helper()
	return StartFakeAt(t, "127.0.0.1:0")
}

// StartFakeAt is StartFake listening on addr, e.g. an address a container can reach.
func StartFakeAt(t testing.TB, addr string) *Server {
	t.Helper()
	faker := gofakes3.New(s3mem.New())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("gofakes3: listen on %s: %v", addr, err)
	}
	hs := httptest.NewUnstartedServer(faker.Server())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	s := newServer(hs.URL)
	s.createBucket(t)
	return s
}

func newServer(endpoint string) *Server {
	s := &Server{
		Endpoint:  endpoint,
		Bucket:    "amichain-test",
		AccessKey: "AKIATEST" + randomHex(6),
		SecretKey: "secret-" + randomHex(16),
	}
	s.Client = NewClient(endpoint, s.AccessKey, s.SecretKey)
	return s
}

func (s *Server) createBucket(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("create bucket %s at %s: %v", s.Bucket, s.Endpoint, err)
	}
}

// Keys lists every key under prefix, so tests can check what was (not) written.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list s3://%s/%s: %v", s.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
