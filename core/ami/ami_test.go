package ami_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/ami"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/ec2local"
)

func startEC2(t *testing.T) (*ec2local.Server, ami.Clients) {
	srv, err := ec2local.Start(t.Context(), ec2local.Options{})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	clients := map[string]upstream.DescribeImagesAPI{}
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		clients[region] = ec2.New(ec2.Options{Region: region, BaseEndpoint: aws.String(srv.URL()),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", "")})
	}
	return srv, ami.Static(clients)
}

func TestCheck(t *testing.T) {
	srv, clients := startEC2(t)
	east := srv.AddImage(ec2local.Image{Name: "base-1"})
	west := srv.AddImage(ec2local.Image{Name: "base-1", Region: "eu-west-1"})
	pending := srv.AddImage(ec2local.Image{Name: "web-1", State: "pending"})
	rec := func(amis map[string]string) *record.Record {
		return &record.Record{Image: "base", Region: "us-east-1", AMIs: amis}
	}
	tests := []struct {
		name string
		rec  *record.Record
		want string
	}{
		{"live in both regions", rec(map[string]string{"us-east-1": east, "eu-west-1": west}), ""},
		{"copy gone", rec(map[string]string{"us-east-1": east, "eu-west-1": "ami-0000000000000dead"}),
			"AMI ami-0000000000000dead in eu-west-1 no longer exists (deregistered?)"},
		{"id of another region", rec(map[string]string{"us-east-1": west}),
			fmt.Sprintf("AMI %s in us-east-1 no longer exists (deregistered?)", west)},
		{"not available", rec(map[string]string{"us-east-1": pending}),
			fmt.Sprintf("AMI %s in us-east-1 is pending, not available", pending)},
	}
	var recs []*record.Record
	for _, tc := range tests {
		recs = append(recs, tc.rec)
	}
	got, err := ami.NewChecker(clients).Check(context.Background(), recs)
	assert.NilError(t, err)
	for i, tc := range tests {
		assert.Check(t, got[i] == tc.want, "%s: got %q, want %q", tc.name, got[i], tc.want)
	}
	// One call per region for all the records.
	assert.DeepEqual(t, srv.Calls(), []string{"DescribeImages", "DescribeImages"})
}
