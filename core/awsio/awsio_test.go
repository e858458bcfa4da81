package awsio_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/internal/ec2local"
)

// stalled accepts connections and never answers.
func stalled(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return "http://" + l.Addr().String()
}

func htmlPage(t *testing.T, status int) string {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprint(w, "<!DOCTYPE html><html><body>Sign in to continue</body></html>")
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestBoundedAndExplained(t *testing.T) {
	ec2srv, err := ec2local.Start(t.Context(), ec2local.Options{})
	assert.NilError(t, err)
	t.Cleanup(func() { ec2srv.Close() })
	limits := awsio.Limits{Timeout: 300 * time.Millisecond, Attempts: 2}
	tests := []struct {
		name     string
		endpoint string
		setup    func()
		kind     awsio.Kind
		hint     string
	}{
		{name: "accepts and never answers", endpoint: stalled(t), kind: awsio.Timeout,
			hint: "EC2 endpoint accepted the connection but did not answer: check the endpoint"},
		{name: "HTML page with 200", endpoint: htmlPage(t, 200), kind: awsio.NotAWS, hint: "answered with a web page, not the EC2 API"},
		{name: "HTML page with 502", endpoint: htmlPage(t, 502), kind: awsio.NotAWS, hint: "answered with a web page"},
		{name: "AuthFailure", endpoint: ec2srv.URL(), kind: awsio.Credentials, hint: "check the credentials",
			setup: func() {
				ec2srv.FailNext("DescribeImages", "AuthFailure", "AWS was not able to validate the provided access credentials")
			}},
		{name: "expired token", endpoint: ec2srv.URL(), kind: awsio.Credentials, hint: "check the credentials",
			setup: func() { ec2srv.FailNext("DescribeImages", "RequestExpired", "Request has expired.") }},
		{name: "UnauthorizedOperation", endpoint: ec2srv.URL(), kind: awsio.Denied, hint: "access denied",
			setup: func() { ec2srv.FailNext("DescribeImages", "UnauthorizedOperation", "You are not authorized") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "s", "")}
			limits.Apply(&cfg)
			// The test's own deadline only guards against a hang: the limits must answer first.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(tc.endpoint) })
			_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{})
			assert.Assert(t, err != nil)
			assert.Assert(t, ctx.Err() == nil, "the call outlived its limits: %v", err)
			assert.Equal(t, awsio.Classify(err), tc.kind, "%v", err)
			assert.Check(t, is.Contains(awsio.Explain(err, "EC2").Error(), tc.hint))
		})
	}
	t.Run("S3 on a stalled endpoint", func(t *testing.T) {
		cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "s", "")}
		limits.Apply(&cfg)
		c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(stalled(t)); o.UsePathStyle = true })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
		assert.Assert(t, ctx.Err() == nil, "the call outlived its limits: %v", err)
		assert.Equal(t, awsio.Classify(err), awsio.Timeout, "%v", err)
	})
}
