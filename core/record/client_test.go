package record_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/s3test"
)

// isolateAWS clears every source of the default credential chain, and turns off the instance
// metadata lookup so no test sends traffic off loopback.
func isolateAWS(t *testing.T) {
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
	} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestNewClient(t *testing.T) {
	for _, srv := range servers() {
		t.Run(srv.name, func(t *testing.T) {
			server := srv.start(t)
			profiles := fs.NewFile(t, "credentials", fs.WithContent(
				"[ci]\naws_access_key_id = "+server.AccessKey+"\naws_secret_access_key = "+server.SecretKey+"\n"))
			tests := []struct {
				name   string
				env    map[string]string
				region string
				signed bool // only a server that checks signatures can refuse the credentials
				want   string
			}{
				{name: "environment credentials", region: s3test.Region,
					env: map[string]string{"AWS_ACCESS_KEY_ID": server.AccessKey, "AWS_SECRET_ACCESS_KEY": server.SecretKey}},
				{name: "profile credentials", region: s3test.Region,
					env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": profiles.Path(), "AWS_PROFILE": "ci"}},
				{name: "region from the environment",
					env: map[string]string{"AWS_ACCESS_KEY_ID": server.AccessKey, "AWS_SECRET_ACCESS_KEY": server.SecretKey, "AWS_REGION": s3test.Region}},
				{name: "no credentials", region: s3test.Region,
					want: "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"},
				{name: "secret without key id", region: s3test.Region,
					env:  map[string]string{"AWS_SECRET_ACCESS_KEY": server.SecretKey},
					want: "no AWS credentials found"},
				{name: "no region",
					env:  map[string]string{"AWS_ACCESS_KEY_ID": server.AccessKey, "AWS_SECRET_ACCESS_KEY": server.SecretKey},
					want: "no AWS region: pass --region or set AWS_REGION"},
				{name: "wrong secret", region: s3test.Region, signed: true,
					env:  map[string]string{"AWS_ACCESS_KEY_ID": server.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong-" + server.SecretKey},
					want: "access denied: check the AWS credentials"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					if tc.signed && !server.ChecksSignatures {
						t.Skip("this server accepts any credentials")
					}
					isolateAWS(t)
					for k, v := range tc.env {
						t.Setenv(k, v)
					}
					err := roundTrip(t, record.Options{Region: tc.region, Endpoint: server.Endpoint}, server.Bucket)
					if tc.want == "" {
						assert.NilError(t, err)
						return
					}
					assert.ErrorContains(t, err, tc.want)
					for _, v := range tc.env {
						if strings.Contains(v, "secret") {
							assert.Assert(t, !strings.Contains(err.Error(), v), "secret in error: %v", err)
						}
					}
					assert.Assert(t, is.Equal(len(server.Keys(t, "client/"+t.Name()+"/")), 0), "written despite the error")
				})
			}
		})
	}
}

// roundTrip saves and reads back a record through a client from NewClient.
func roundTrip(t *testing.T, opts record.Options, bucket string) error {
	client, err := record.NewClient(t.Context(), opts)
	if err != nil {
		return err
	}
	s := record.NewStore(client, record.Config{Bucket: bucket, Prefix: "client/" + t.Name()})
	want := rec("web", "f1", "ami-0123456789abcdef0")
	if err := s.Save(t.Context(), want); err != nil {
		return err
	}
	got, err := s.Current(t.Context(), "web")
	assert.NilError(t, err)
	assert.Assert(t, got != nil)
	assert.DeepEqual(t, *got, want)
	return nil
}

func TestStalledEndpointFailsWithinItsLimits(t *testing.T) {
	isolateAWS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // only guards against a hang
	defer cancel()
	client, err := record.NewClient(ctx, record.Options{Region: s3test.Region, Endpoint: "http://" + l.Addr().String(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Limits:      awsio.Limits{Timeout: 200 * time.Millisecond, Attempts: 2}})
	assert.NilError(t, err)
	_, err = record.NewStore(client, record.Config{Bucket: "b"}).Current(ctx, "web")
	assert.Assert(t, ctx.Err() == nil, "the read outlived its limits")
	assert.ErrorContains(t, err, "read s3://b/images/web.json: the S3 endpoint accepted the connection but did not answer: check the endpoint and the network")
}
