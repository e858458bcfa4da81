package ec2local_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/ec2local"
)

var day = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

func start(t *testing.T) *ec2local.Server {
	t.Helper()
	srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{
		{ID: "ami-0000000000000debA", Name: "debian-12-amd64-20250101", OwnerID: "136693071363", CreationDate: day},
		{ID: "ami-0000000000000debB", Name: "debian-12-amd64-20250201", OwnerID: "136693071363", CreationDate: day.AddDate(0, 1, 0),
			Tags: map[string]string{"channel": "stable"}},
		{ID: "ami-0000000000000ubu1", Name: "ubuntu-24.04-20250301", OwnerID: "099720109477", CreationDate: day},
	}})
	assert.NilError(t, err)
	t.Cleanup(func() { assert.NilError(t, srv.Close()) })
	return srv
}

func client(srv *ec2local.Server, region string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       region,
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", ""),
	})
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func TestDescribeImages(t *testing.T) {
	ec2c := client(start(t), "us-east-1")
	tests := []struct {
		name     string
		in       ec2.DescribeImagesInput
		wantIDs  []string
		wantCode string
	}{
		{name: "by id", in: ec2.DescribeImagesInput{ImageIds: []string{"ami-0000000000000debA"}}, wantIDs: []string{"ami-0000000000000debA"}},
		{name: "unknown id", in: ec2.DescribeImagesInput{ImageIds: []string{"ami-0000000000000none"}}, wantCode: "InvalidAMIID.NotFound"},
		{
			name:    "owner and name wildcard",
			in:      ec2.DescribeImagesInput{Owners: []string{"136693071363"}, Filters: []types.Filter{filter("name", "debian-12-amd64-*")}},
			wantIDs: []string{"ami-0000000000000debA", "ami-0000000000000debB"},
		},
		{name: "question mark matches one character", in: ec2.DescribeImagesInput{Filters: []types.Filter{filter("name", "debian-12-amd64-2025010?")}}, wantIDs: []string{"ami-0000000000000debA"}},
		{name: "other owner", in: ec2.DescribeImagesInput{Owners: []string{"099720109477"}, Filters: []types.Filter{filter("name", "debian-*")}}},
		{name: "dot is literal", in: ec2.DescribeImagesInput{Filters: []types.Filter{filter("name", "ubuntu-24.04*")}}, wantIDs: []string{"ami-0000000000000ubu1"}},
		{name: "tag filter", in: ec2.DescribeImagesInput{Filters: []types.Filter{filter("tag:channel", "stable")}}, wantIDs: []string{"ami-0000000000000debB"}},
		{name: "tag-key filter", in: ec2.DescribeImagesInput{Filters: []types.Filter{filter("tag-key", "channel")}}, wantIDs: []string{"ami-0000000000000debB"}},
		{
			name:    "filters are ANDed, values ORed",
			in:      ec2.DescribeImagesInput{Filters: []types.Filter{filter("state", "available"), filter("name", "nope", "ubuntu-*")}},
			wantIDs: []string{"ami-0000000000000ubu1"},
		},
		{name: "unknown filter", in: ec2.DescribeImagesInput{Filters: []types.Filter{filter("colour", "blue")}}, wantCode: "InvalidParameterValue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ec2c.DescribeImages(t.Context(), &tc.in)
			if tc.wantCode != "" {
				assert.Equal(t, errorCode(err), tc.wantCode, "err: %v", err)
				return
			}
			assert.NilError(t, err)
			var ids []string
			for _, img := range out.Images {
				ids = append(ids, aws.ToString(img.ImageId))
			}
			assert.DeepEqual(t, ids, tc.wantIDs)
		})
	}
}

// TestBuildLifecycle walks the calls Packer's amazon-ebs builder makes, in its order.
func TestBuildLifecycle(t *testing.T) {
	srv := start(t)
	ctx, ec2c := t.Context(), client(srv, "us-east-1")

	_, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{ec2local.SubnetID}})
	assert.NilError(t, err)
	_, err = ec2c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{ec2local.SecurityGroupID}})
	assert.NilError(t, err)

	run, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String("ami-0000000000000debB"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: types.InstanceTypeT3Small, KeyName: aws.String("ci"), SubnetId: aws.String(ec2local.SubnetID),
		SecurityGroupIds: []string{ec2local.SecurityGroupID},
	})
	assert.NilError(t, err)
	assert.Equal(t, run.Instances[0].State.Name, types.InstanceStateNamePending)
	id := aws.ToString(run.Instances[0].InstanceId)

	inst := describeInstance(ctx, t, ec2c, id)
	assert.Equal(t, inst.State.Name, types.InstanceStateNameRunning)
	assert.Equal(t, aws.ToString(inst.PublicIpAddress), "127.0.0.1")
	assert.Equal(t, aws.ToString(inst.VpcId), ec2local.VPCID)
	vol := aws.ToString(inst.BlockDeviceMappings[0].Ebs.VolumeId)

	stop, err := ec2c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	assert.NilError(t, err)
	assert.Equal(t, stop.StoppingInstances[0].CurrentState.Name, types.InstanceStateNameStopping)
	assert.Equal(t, describeInstance(ctx, t, ec2c, id).State.Name, types.InstanceStateNameStopped)

	created, err := ec2c.CreateImage(ctx, &ec2.CreateImageInput{
		InstanceId: aws.String(id), Name: aws.String("web-0123456789ab-20250301000000"),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}},
			{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("snap"), Value: aws.String("only")}}},
		},
	})
	assert.NilError(t, err)
	ami := aws.ToString(created.ImageId)
	_, err = ec2c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{ami}, Tags: []types.Tag{{Key: aws.String("amichain:image"), Value: aws.String("web")}}})
	assert.NilError(t, err)
	_, err = ec2c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("web-0123456789ab-20250301000000")})
	assert.Equal(t, errorCode(err), "InvalidAMIName.Duplicate", "err: %v", err)

	self, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	assert.NilError(t, err)
	assert.Equal(t, len(self.Images), 1)
	assert.Equal(t, self.Images[0].State, types.ImageStateAvailable)
	assert.Equal(t, aws.ToString(self.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId) != "", true)

	term, err := ec2c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	assert.NilError(t, err)
	assert.Equal(t, term.TerminatingInstances[0].PreviousState.Name, types.InstanceStateNameStopped)
	assert.Equal(t, describeInstance(ctx, t, ec2c, id).State.Name, types.InstanceStateNameTerminated)
	vols, err := ec2c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{filter("volume-id", vol)}})
	assert.NilError(t, err)
	assert.Equal(t, len(vols.Volumes), 0, "the root volume goes with the instance")

	assert.DeepEqual(t, srv.Launches(), []ec2local.Launch{{InstanceID: id, ImageID: "ami-0000000000000debB", InstanceType: "t3.small", KeyName: "ci"}})
	images := srv.Images()
	assert.Equal(t, len(images), 1)
	assert.Equal(t, images[0].ID, ami)
	assert.Equal(t, images[0].SourceInstance, id)
	assert.Equal(t, images[0].SourceImage, "ami-0000000000000debB")
	assert.DeepEqual(t, images[0].Tags, map[string]string{"Name": "web", "amichain:image": "web"})
	assert.Equal(t, srv.Calls()[0], "DescribeSubnets")
}

func describeInstance(ctx context.Context, t *testing.T, ec2c *ec2.Client, id string) types.Instance {
	t.Helper()
	out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	assert.NilError(t, err)
	assert.Equal(t, len(out.Reservations), 1)
	return out.Reservations[0].Instances[0]
}

func TestErrors(t *testing.T) {
	srv := start(t)
	ec2c := client(srv, "us-east-1")
	tests := []struct {
		name     string
		call     func(ctx context.Context) error
		wantCode string
	}{
		{name: "run unknown source AMI", wantCode: "InvalidAMIID.NotFound", call: func(ctx context.Context) error {
			_, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0000000000000none"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}},
		{name: "run in unknown subnet", wantCode: "InvalidSubnetID.NotFound", call: func(ctx context.Context) error {
			_, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0000000000000debA"), SubnetId: aws.String("subnet-1"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}},
		{name: "unknown security group", wantCode: "InvalidGroup.NotFound", call: func(ctx context.Context) error {
			_, err := ec2c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-1"}})
			return err
		}},
		{name: "image from unknown instance", wantCode: "InvalidInstanceID.NotFound", call: func(ctx context.Context) error {
			_, err := ec2c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String("i-1"), Name: aws.String("x")})
			return err
		}},
		{name: "tag unknown AMI", wantCode: "InvalidAMIID.NotFound", call: func(ctx context.Context) error {
			_, err := ec2c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"ami-1"}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		}},
		{name: "injected failure", wantCode: "RequestLimitExceeded", call: func(ctx context.Context) error {
			srv.FailNext("DescribeRegions", "RequestLimitExceeded", "slow down")
			_, err := ec2c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
			return err
		}},
		{name: "injected failure is used once", call: func(ctx context.Context) error {
			_, err := ec2c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(t.Context())
			if tc.wantCode == "" {
				assert.NilError(t, err)
				return
			}
			assert.Equal(t, errorCode(err), tc.wantCode, "err: %v", err)
		})
	}
}

func TestUnknownActionWireFormat(t *testing.T) {
	srv := start(t)
	resp, err := http.PostForm(srv.URL(), url.Values{"Action": {"LaunchRocket"}, "Version": {"2016-11-15"}})
	assert.NilError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	assert.NilError(t, err)
	assert.Equal(t, resp.StatusCode, http.StatusBadRequest)
	assert.Assert(t, is.Contains(string(body), "<Response><Errors><Error><Code>InvalidAction</Code>"))
	assert.Assert(t, is.Contains(string(body), "<RequestID>"))

	resp, err = http.PostForm(srv.URL(), url.Values{"Action": {"DescribeRegions"}})
	assert.NilError(t, err)
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	assert.NilError(t, err)
	assert.Assert(t, strings.Contains(string(body), `<DescribeRegionsResponse xmlns="`+ec2local.Namespace+`">`), string(body))
}

func TestCopyImageToAnotherRegion(t *testing.T) {
	srv := start(t)
	east, west := client(srv, "us-east-1"), client(srv, "us-west-2")
	ctx := t.Context()
	copied, err := west.CopyImage(ctx, &ec2.CopyImageInput{
		SourceImageId: aws.String("ami-0000000000000debB"), SourceRegion: aws.String("us-east-1"),
		Name: aws.String("copy"), CopyImageTags: aws.Bool(true),
	})
	assert.NilError(t, err)
	out, err := west.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(copied.ImageId)}})
	assert.NilError(t, err)
	assert.Equal(t, aws.ToString(out.Images[0].Name), "copy")
	assert.DeepEqual(t, srv.Images()[0].Tags, map[string]string{"channel": "stable"})

	_, err = east.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(copied.ImageId)}})
	assert.Equal(t, errorCode(err), "InvalidAMIID.NotFound", "a copy lives in its own region only")
	_, err = west.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: aws.String("ami-0000000000000debB"), SourceRegion: aws.String("us-west-2"), Name: aws.String("x")})
	assert.Equal(t, errorCode(err), "InvalidAMIID.NotFound")
}

func TestConcurrentClients(t *testing.T) {
	srv := start(t)
	ec2c := client(srv, "us-east-1")
	errs := make(chan error, 20)
	for range cap(errs) {
		go func() {
			_, err := ec2c.RunInstances(t.Context(), &ec2.RunInstancesInput{ImageId: aws.String("ami-0000000000000debA"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			errs <- err
		}()
	}
	for range cap(errs) {
		assert.NilError(t, <-errs)
	}
	seen := map[string]bool{}
	for _, l := range srv.Launches() {
		seen[l.InstanceID] = true
	}
	assert.Equal(t, len(seen), cap(errs), "every launch has its own instance id")
}
