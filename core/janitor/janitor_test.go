package janitor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/janitor"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/s3test"
)

const upstream = "ami-0aaaaaaaaaaaa0001"

type run struct {
	id, fingerprint string
	expires         time.Time
	// created by the run, as Packer makes them: a temporary key pair and security group
	// tagged like the instance (run_tags), and the instance using both.
	instance, keyPair, group string
}

func spec(kind types.ResourceType, r *run) []types.TagSpecification {
	return []types.TagSpecification{{ResourceType: kind, Tags: []types.Tag{
		{Key: aws.String(janitor.TagRunID), Value: aws.String(r.id)},
		{Key: aws.String(janitor.TagExpiresAt), Value: aws.String(r.expires.Format(time.RFC3339))},
		{Key: aws.String("Name"), Value: aws.String("amichain-build-web")},
		{Key: aws.String(janitor.TagImage), Value: aws.String("web")},
		{Key: aws.String(janitor.TagFingerprint), Value: aws.String(r.fingerprint)},
	}}}
}

func start(t *testing.T, c *ec2.Client, r *run) *run {
	ctx := context.Background()
	kp, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("packer_" + r.id), TagSpecifications: spec(types.ResourceTypeKeyPair, r)})
	assert.NilError(t, err)
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("packer_" + r.id),
		Description: aws.String("Temporary group for Packer"), TagSpecifications: spec(types.ResourceTypeSecurityGroup, r)})
	assert.NilError(t, err)
	inst, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(upstream), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: kp.KeyName, SecurityGroupIds: []string{aws.ToString(sg.GroupId)}, TagSpecifications: spec(types.ResourceTypeInstance, r)})
	assert.NilError(t, err)
	r.instance, r.keyPair, r.group = aws.ToString(inst.Instances[0].InstanceId), aws.ToString(kp.KeyPairId), aws.ToString(sg.GroupId)
	return r
}

func state(t *testing.T, c *ec2.Client, r *run) (inst string, key, group bool) {
	ctx := context.Background()
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.instance}})
	assert.NilError(t, err)
	inst = string(out.Reservations[0].Instances[0].State.Name)
	keys, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyPairIds: []string{r.keyPair}})
	key = err == nil && len(keys.KeyPairs) == 1
	_, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{r.group}})
	return inst, key, err == nil
}

func TestSweep(t *testing.T) {
	srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{{ID: upstream, Name: "debian-12"}}})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", "")})
	now := time.Now()
	killed := start(t, c, &run{id: "run-killed", expires: now.Add(-time.Minute)})
	live := start(t, c, &run{id: "run-live", expires: now.Add(time.Hour)})
	mine := start(t, c, &run{id: "run-mine", expires: now.Add(-time.Minute)})
	// Not amichain's: never touched.
	_, err = c.RunInstances(t.Context(), &ec2.RunInstancesInput{ImageId: aws.String(upstream), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	assert.NilError(t, err)

	opts := janitor.Options{Now: now, RunID: "run-mine", DryRun: true}
	rep, err := janitor.Sweep(t.Context(), c, "us-east-1", opts)
	assert.NilError(t, err)
	assert.Equal(t, len(rep.Leftovers), 3)
	for _, l := range rep.Leftovers {
		assert.Equal(t, l.RunID, "run-killed")
		assert.Equal(t, l.Action, "would remove")
	}
	inst, key, group := state(t, c, killed)
	assert.Check(t, inst == "running" && key && group, "a dry run removed something")

	opts.DryRun = false
	rep, err = janitor.Sweep(t.Context(), c, "us-east-1", opts)
	assert.NilError(t, err)
	var got [][2]string
	for _, l := range rep.Leftovers {
		got = append(got, [2]string{l.Kind, l.ID})
		assert.Equal(t, l.Action, "removed")
	}
	assert.DeepEqual(t, got, [][2]string{{janitor.Instance, killed.instance}, {janitor.KeyPair, killed.keyPair}, {janitor.SecurityGroup, killed.group}})
	assert.Equal(t, rep.Kept, 6) // live's three, mine's three
	assert.Check(t, is.Contains(rep.String(), killed.instance))

	inst, key, group = state(t, c, killed)
	assert.Check(t, inst == "terminated" && !key && !group, "killed run: instance %s, key pair %v, group %v", inst, key, group)
	for _, r := range []*run{live, mine} {
		inst, key, group = state(t, c, r)
		assert.Check(t, inst == "running" && key && group, "%s touched", r.id)
	}

	rep, err = janitor.Sweep(t.Context(), c, "us-east-1", opts)
	assert.NilError(t, err)
	assert.Equal(t, len(rep.Leftovers), 0, "a second sweep finds nothing more")
}

// A killed run's builder is removed before it expires once the run holds no build lease; a
// run that still holds one keeps its builder. The leases are the record store's, in S3.
func TestSweepRunWithoutLease(t *testing.T) {
	srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{{ID: upstream, Name: "debian-12"}}})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", "")})
	s3 := s3test.StartFake(t)
	store := record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket, Prefix: "amichain"})
	now := time.Now()
	const building, released = "3f2a9c0d1e4b5a69", "9e8d7c6b5a4f3e2d"
	alive := start(t, c, &run{id: "run-alive", fingerprint: building, expires: now.Add(time.Hour)})
	killed := start(t, c, &run{id: "run-killed", fingerprint: released, expires: now.Add(time.Hour)})
	gone := start(t, c, &run{id: "run-gone", fingerprint: "0123456789abcdef", expires: now.Add(time.Hour)})
	_, _, err = store.Acquire(t.Context(), "web", building, "run-alive", time.Hour, now)
	assert.NilError(t, err)
	l, _, err := store.Acquire(t.Context(), "web", released, "run-killed", time.Hour, now)
	assert.NilError(t, err)
	assert.NilError(t, store.Release(t.Context(), l)) // as a cancelled run does on its way out

	rep, err := janitor.Sweep(t.Context(), c, "us-east-1", janitor.Options{Now: now, RunID: "run-mine",
		Building: func(ctx context.Context, run, image, fingerprint string) (bool, error) {
			return store.Holds(ctx, run, image, fingerprint, now)
		}})
	assert.NilError(t, err)
	var removed []string
	for _, l := range rep.Leftovers {
		removed = append(removed, l.RunID+" "+l.Kind)
	}
	slices.Sort(removed)
	assert.DeepEqual(t, removed, []string{"run-gone instance", "run-gone key pair", "run-gone security group",
		"run-killed instance", "run-killed key pair", "run-killed security group"})
	inst, key, group := state(t, c, alive)
	assert.Check(t, inst == "running" && key && group, "the building run's builder was touched")
	for _, r := range []*run{killed, gone} {
		inst, _, _ = state(t, c, r)
		assert.Check(t, is.Equal(inst, "terminated"), r.id)
	}
}
