package build_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

// TestAccessDeniedIsSaidOnce: a run with refused credentials says so once, not per image.
func TestAccessDeniedIsSaidOnce(t *testing.T) {
	t.Run("plan against a server that refuses the key", func(t *testing.T) {
		srv := s3test.StartVersitygw(t)
		bad := s3test.NewClient(srv.Endpoint, srv.AccessKey, "wrong-secret")
		store := record.NewStore(bad, record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
		ex := coordinatedRun(t, repotest.Copy(t), store, &amiBuilder{ec2: startEC2(t)}, "run")
		_, err := ex.Planner.Plan(t.Context(), upstreamAMI, "")
		assert.ErrorContains(t, err, "check the AWS credentials")
		assert.Equal(t, strings.Count(err.Error(), "access denied"), 1, "%v", err)
	})
	t.Run("summary of images refused one by one", func(t *testing.T) {
		denied := func(key string) error {
			return fmt.Errorf("write s3://b/%s: access denied: %w", key, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"})
		}
		sum := build.Summary{Outcomes: []build.Outcome{
			{Image: "base", Status: build.Built},
			{Image: "web", Status: build.Failed, Err: denied("web.json")},
			{Image: "worker", Status: build.Failed, Err: denied("worker.json")},
			{Image: "db", Status: build.Failed, Err: errors.New("packer failed")},
		}}
		err := sum.Err()
		assert.Equal(t, strings.Count(err.Error(), "access denied"), 1, "%v", err)
		assert.ErrorContains(t, err, "web, worker: write s3://b/web.json: access denied")
		assert.ErrorContains(t, err, "db: packer failed")
	})
}
