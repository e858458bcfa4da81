// Package upstream resolves the tree's upstream OS image to an AMI id: a fixed id is checked to
// exist, a lookup takes the most recent available image matching owners and name.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/core/tree"
)

// DescribeImagesAPI is the part of *ec2.Client that Resolve uses.
type DescribeImagesAPI interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
}

// Resolve returns the AMI id of u. A fixed AMI must exist and be available, so that a
// deregistered pin fails here rather than in the middle of a Packer build.
func Resolve(ctx context.Context, api DescribeImagesAPI, u tree.Upstream) (string, error) {
	if !u.IsLookup() {
		return fixed(ctx, api, u.AMI)
	}
	in := &ec2.DescribeImagesInput{
		Owners: u.Owners,
		Filters: []types.Filter{
			{Name: aws.String("name"), Values: []string{u.Name}},
			{Name: aws.String("state"), Values: []string{"available"}},
		},
	}
	var best types.Image
	var bestAt time.Time
	for {
		out, err := api.DescribeImages(ctx, in)
		if err != nil {
			return "", fmt.Errorf("look up upstream AMI (owners %v, name %q): %w", u.Owners, u.Name, awsio.Explain(err, "EC2"))
		}
		for _, img := range out.Images {
			at, err := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
			if err != nil {
				return "", fmt.Errorf("look up upstream AMI: image %s has an unreadable creation date %q: %w", aws.ToString(img.ImageId), aws.ToString(img.CreationDate), err)
			}
			// Ties go to the greater id so that the answer does not depend on result order.
			if best.ImageId == nil || at.After(bestAt) || (at.Equal(bestAt) && aws.ToString(img.ImageId) > aws.ToString(best.ImageId)) {
				best, bestAt = img, at
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if best.ImageId == nil {
		return "", fmt.Errorf("no available AMI owned by %v has a name matching %q: check upstream.owners and upstream.name in %s (and the region), or pin one with upstream.ami",
			u.Owners, u.Name, tree.DefaultPath)
	}
	return *best.ImageId, nil
}

func fixed(ctx context.Context, api DescribeImagesAPI, id string) (string, error) {
	out, err := api.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	var apiErr smithy.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidAMIID.NotFound") {
		return "", fmt.Errorf("check upstream AMI %s: %w", id, awsio.Explain(err, "EC2"))
	}
	if err != nil || len(out.Images) == 0 {
		return "", fmt.Errorf("upstream AMI %s does not exist (or is not visible to this account and region): fix upstream.ami in %s", id, tree.DefaultPath)
	}
	if st := out.Images[0].State; st != types.ImageStateAvailable {
		return "", fmt.Errorf("upstream AMI %s is %s, not available: pin another image in upstream.ami in %s", id, st, tree.DefaultPath)
	}
	return id, nil
}

// NewClient builds an EC2 client for region with creds, or the SDK's default credential chain
// when creds is nil; a non-empty endpoint replaces the AWS one (a local EC2 API in tests).
// Every request is bounded by awsio's default limits.
func NewClient(ctx context.Context, region, endpoint string, creds aws.CredentialsProvider) (*ec2.Client, error) {
	cfg, err := awsio.Config(ctx, region, creds)
	if err != nil {
		return nil, err
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}
