// Package ami asks EC2 about the AMIs amichain recorded: whether they still exist and are
// available in every region a record names, and what their amichain tags say (to adopt one).
package ami

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/upstream"
)

// Clients returns the EC2 client for a region; the module builds them with upstream.NewClient.
type Clients func(ctx context.Context, region string) (upstream.DescribeImagesAPI, error)

// batch is how many ids go into one DescribeImages filter (EC2 accepts up to 200 values).
const batch = 100

// Checker tells live AMIs from dead ones, one DescribeImages call per region and batch.
type Checker struct {
	clients Clients

	mu    sync.Mutex
	byReg map[string]upstream.DescribeImagesAPI
}

// NewChecker returns a Checker over the clients.
func NewChecker(clients Clients) *Checker {
	return &Checker{clients: clients, byReg: map[string]upstream.DescribeImagesAPI{}}
}

// Static is Clients for one client per region known in advance (tests, a single region).
func Static(byRegion map[string]upstream.DescribeImagesAPI) Clients {
	return func(_ context.Context, region string) (upstream.DescribeImagesAPI, error) {
		if c, ok := byRegion[region]; ok {
			return c, nil
		}
		return nil, fmt.Errorf("no EC2 client for region %s", region)
	}
}

// Check returns, for each record, why it cannot be used ("" when every AMI it names exists
// and is available): the first dead AMI and its region.
func (c *Checker) Check(ctx context.Context, recs []*record.Record) ([]string, error) {
	want := map[string][]string{} // region -> ids
	for _, r := range recs {
		for region, id := range r.AMIs {
			if !slices.Contains(want[region], id) {
				want[region] = append(want[region], id)
			}
		}
	}
	state := map[string]string{} // region/id -> state; absent: not found
	regions := make([]string, 0, len(want))
	for r := range want {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, region := range regions {
		api, err := c.client(ctx, region)
		if err != nil {
			return nil, err
		}
		ids := want[region]
		for start := 0; start < len(ids); start += batch {
			chunk := ids[start:min(start+batch, len(ids))]
			// A filter, unlike ImageIds, does not fail the whole call for one missing id.
			in := &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("image-id"), Values: chunk}}}
			for {
				out, err := api.DescribeImages(ctx, in)
				if err != nil {
					return nil, fmt.Errorf("check that the recorded AMIs exist in %s: %w", region, awsio.Explain(err, "EC2"))
				}
				for _, img := range out.Images {
					state[region+"/"+aws.ToString(img.ImageId)] = string(img.State)
				}
				if aws.ToString(out.NextToken) == "" {
					break
				}
				in.NextToken = out.NextToken
			}
		}
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = deadReason(r, state)
	}
	return out, nil
}

func deadReason(r *record.Record, state map[string]string) string {
	regions := make([]string, 0, len(r.AMIs))
	for region := range r.AMIs {
		regions = append(regions, region)
	}
	sort.Strings(regions)
	for _, region := range regions {
		id := r.AMIs[region]
		switch st, ok := state[region+"/"+id]; {
		case !ok:
			return fmt.Sprintf("AMI %s in %s no longer exists (deregistered?)", id, region)
		case st != string(types.ImageStateAvailable):
			return fmt.Sprintf("AMI %s in %s is %s, not available", id, region, st)
		}
	}
	return ""
}

func (c *Checker) client(ctx context.Context, region string) (upstream.DescribeImagesAPI, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if api, ok := c.byReg[region]; ok {
		return api, nil
	}
	api, err := c.clients(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("EC2 client for %s: %w", region, err)
	}
	c.byReg[region] = api
	return api, nil
}
