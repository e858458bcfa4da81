package ami

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/core/upstream"
)

// The tags Packer puts on every AMI it builds for amichain (packer/image.pkr.hcl).
const (
	TagImage       = "amichain:image"
	TagFingerprint = "amichain:fingerprint"
	TagParentAMI   = "amichain:parent-ami"
	TagCommit      = "amichain:commit"
)

// Adopt makes the record of an existing AMI from its amichain tags: an AMI whose save failed
// after the build, or whose record was lost, is recorded without building it again. The
// caller saves it (record.Store.Save). t, when given, must declare the tagged image; it
// supplies the parent's name. Copies in other regions are not looked up: the record names the
// AMI in region only, and the next build records the copies again.
func Adopt(ctx context.Context, api upstream.DescribeImagesAPI, region, id string, t *tree.Tree) (record.Record, error) {
	out, err := api.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("image-id"), Values: []string{id}}}})
	if err != nil {
		return record.Record{}, fmt.Errorf("adopt %s: %w", id, awsio.Explain(err, "EC2"))
	}
	if len(out.Images) == 0 {
		return record.Record{}, fmt.Errorf("adopt %s: no such AMI in %s (or not visible to these credentials): check the id and the region", id, region)
	}
	img := out.Images[0]
	if img.State != types.ImageStateAvailable {
		return record.Record{}, fmt.Errorf("adopt %s: the AMI is %s, not available: wait for it, or build instead", id, img.State)
	}
	tags := map[string]string{}
	for _, tag := range img.Tags {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	for _, k := range []string{TagImage, TagFingerprint, TagParentAMI} {
		if tags[k] == "" {
			return record.Record{}, fmt.Errorf("adopt %s: it has no %s tag: only AMIs built by amichain's Packer template can be adopted", id, k)
		}
	}
	built, err := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
	if err != nil {
		return record.Record{}, fmt.Errorf("adopt %s: unreadable creation date %q: %w", id, aws.ToString(img.CreationDate), err)
	}
	r := record.Record{
		Scheme: record.Scheme, Image: tags[TagImage], Fingerprint: tags[TagFingerprint],
		Region: region, AMIs: map[string]string{region: id}, ParentAMI: tags[TagParentAMI],
		Commit: tags[TagCommit], BuiltAt: built.UTC(),
	}
	if t != nil {
		declared, ok := t.Get(r.Image)
		if !ok {
			return record.Record{}, fmt.Errorf("adopt %s: it was built for image %q, which %s does not declare (images: %v)", id, r.Image, tree.DefaultPath, t.Names())
		}
		r.Parent = declared.Parent
	}
	if err := r.Validate(); err != nil {
		return record.Record{}, fmt.Errorf("adopt %s: its tags do not make a valid record: %w", id, err)
	}
	return r, nil
}
