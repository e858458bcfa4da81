package build_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/ami"
	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

func ec2Client(srv *ec2local.Server) *ec2.Client {
	return ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", "")})
}

func step(p *plan.Plan, name string) plan.Step {
	for _, s := range p.Steps {
		if s.Image.Name == name {
			return s
		}
	}
	return plan.Step{}
}

func TestOnlyLiveAMIsCount(t *testing.T) {
	srv := s3test.StartFake(t)
	ec2srv := startEC2(t)
	ec2c := ec2Client(ec2srv)
	store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
	dir := repotest.Copy(t)
	b := &amiBuilder{ec2: ec2srv}
	runAll := func(t *testing.T) (*plan.Plan, build.Summary) {
		ex := coordinatedRun(t, dir, store, b, "run")
		ex.Planner.Live = ami.NewChecker(ami.Static(map[string]upstream.DescribeImagesAPI{"us-east-1": ec2c}))
		p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "")
		assert.NilError(t, err)
		sum, err := ex.Run(t.Context(), p)
		assert.NilError(t, err)
		return p, sum
	}
	deregister := func(t *testing.T, id string) {
		_, err := ec2c.DeregisterImage(t.Context(), &ec2.DeregisterImageInput{ImageId: &id})
		assert.NilError(t, err)
	}
	_, first := runAll(t)
	assert.Equal(t, first.Count(build.Built), 5)

	t.Run("a deregistered current AMI is rebuilt", func(t *testing.T) {
		dead := outcome(first, "worker").AMI()
		deregister(t, dead)
		p, sum := runAll(t)
		assert.DeepEqual(t, p.Stale(), []string{"worker"})
		assert.Check(t, is.Contains(step(p, "worker").Reasons, "AMI "+dead+" in us-east-1 no longer exists (deregistered?)"))
		assert.Equal(t, sum.Count(build.Built), 1)
	})
	t.Run("a deregistered AMI in the index is rebuilt, not reused", func(t *testing.T) {
		const role = "ansible/roles/nginx/templates/app.conf.j2"
		before, err := os.ReadFile(filepath.Join(dir, role))
		assert.NilError(t, err)
		webBefore, err := store.Current(t.Context(), "web")
		assert.NilError(t, err)
		repotest.Append(t, dir, role, "# edited\n")
		_, sum := runAll(t)
		assert.Equal(t, outcome(sum, "web").Status, build.Built)
		assert.NilError(t, os.WriteFile(filepath.Join(dir, role), before, 0o644))
		deregister(t, webBefore.AMI())
		p, sum := runAll(t)
		assert.DeepEqual(t, p.Stale(), []string{"web"})
		assert.Check(t, is.Contains(step(p, "web").Reasons,
			"not reusing "+webBefore.AMI()+", built from these inputs before: AMI "+webBefore.AMI()+" in us-east-1 no longer exists (deregistered?)"))
		assert.Equal(t, outcome(sum, "web").Status, build.Built)
	})
}
