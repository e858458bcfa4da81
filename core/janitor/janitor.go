// Package janitor finds what dead amichain runs left in EC2 (builder instances, and the
// temporary key pairs and security groups Packer makes for them) and removes it. Packer tags
// all three with the run's id and an expiry (run_tags in packer/image.pkr.hcl): anything past
// its expiry belongs to a run that can no longer be cleaning up after itself.
package janitor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amichain/amichain/core/awsio"
)

// The tags every builder resource carries (packer/image.pkr.hcl, run_tags).
const (
	TagRunID       = "amichain:run-id"
	TagExpiresAt   = "amichain:expires-at"
	TagImage       = "amichain:image"
	TagFingerprint = "amichain:fingerprint"
)

// EC2 is the part of *ec2.Client the janitor uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeKeyPairs(ctx context.Context, in *ec2.DescribeKeyPairsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	DeleteKeyPair(ctx context.Context, in *ec2.DeleteKeyPairInput, optFns ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)
	DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DeleteSecurityGroup(ctx context.Context, in *ec2.DeleteSecurityGroupInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
}

// Options say what the sweep may touch.
type Options struct {
	// Now decides what has expired.
	Now time.Time
	// RunID is the sweeping run's own id: its resources are never touched, expired or not.
	RunID string
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Building, when set, says whether run still holds its build lease on the image's
	// fingerprint (both from the resource's tags). A resource whose run holds no lease is left
	// by a dead run even before it expires: a run takes the lease before it starts a builder,
	// and a killed run's lease is released or runs out.
	Building func(ctx context.Context, run, image, fingerprint string) (bool, error)
}

// Kind of resource.
const (
	Instance      = "instance"
	KeyPair       = "key pair"
	SecurityGroup = "security group"
)

// Leftover is one resource a dead run left behind.
type Leftover struct {
	Kind, ID, Name     string
	RunID              string
	Image, Fingerprint string
	ExpiresAt          time.Time
	// Action is what the sweep did: "removed", "would remove" (dry run), or why not.
	Action string
	Err    error
}

// Report lists the leftovers found, in the order they were handled.
type Report struct {
	Region    string
	DryRun    bool
	Leftovers []Leftover
	// Kept counts tagged resources of live runs (not yet expired, or this run's).
	Kept int
}

// Err joins the failures to remove something.
func (r Report) Err() error {
	var errs []error
	for _, l := range r.Leftovers {
		if l.Err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", l.Kind, l.ID, l.Err))
		}
	}
	return errors.Join(errs...)
}

// String renders the report as a table.
func (r Report) String() string {
	var b strings.Builder
	if len(r.Leftovers) == 0 {
		fmt.Fprintf(&b, "no leftovers of dead amichain runs in %s (%d resources of live runs kept)\n", r.Region, r.Kept)
		return b.String()
	}
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tID\tNAME\tRUN\tEXPIRED\tACTION")
	for _, l := range r.Leftovers {
		action := l.Action
		if l.Err != nil {
			action = "failed: " + l.Err.Error()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Kind, l.ID, l.Name, l.RunID, l.ExpiresAt.UTC().Format(time.RFC3339), action)
	}
	w.Flush()
	fmt.Fprintf(&b, "%d leftovers of dead runs in %s, %d resources of live runs kept\n", len(r.Leftovers), r.Region, r.Kept)
	return b.String()
}

// Sweep finds and removes the leftovers of dead runs in the client's region: instances first
// (terminated), then key pairs, then security groups, which EC2 frees only once their
// instances are gone (a group still in use is left to the next sweep, and says so).
func Sweep(ctx context.Context, api EC2, region string, opts Options) (Report, error) {
	rep := Report{Region: region, DryRun: opts.DryRun}
	tagged := []types.Filter{{Name: aws.String("tag-key"), Values: []string{TagRunID}}}

	var instances []Leftover
	in := &ec2.DescribeInstancesInput{Filters: append(tagged, types.Filter{Name: aws.String("instance-state-name"),
		Values: []string{"pending", "running", "stopping", "stopped"}})}
	for {
		out, err := api.DescribeInstances(ctx, in)
		if err != nil {
			return rep, fmt.Errorf("find builder instances in %s: %w", region, awsio.Explain(err, "EC2"))
		}
		for _, res := range out.Reservations {
			for _, inst := range res.Instances {
				instances = append(instances, leftover(Instance, aws.ToString(inst.InstanceId), inst.Tags))
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	keys, err := api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: tagged})
	if err != nil {
		return rep, fmt.Errorf("find builder key pairs in %s: %w", region, awsio.Explain(err, "EC2"))
	}
	var pairs []Leftover
	for _, k := range keys.KeyPairs {
		l := leftover(KeyPair, aws.ToString(k.KeyPairId), k.Tags)
		l.Name = aws.ToString(k.KeyName)
		pairs = append(pairs, l)
	}
	var groups []Leftover
	gin := &ec2.DescribeSecurityGroupsInput{Filters: tagged}
	for {
		out, err := api.DescribeSecurityGroups(ctx, gin)
		if err != nil {
			return rep, fmt.Errorf("find builder security groups in %s: %w", region, awsio.Explain(err, "EC2"))
		}
		for _, g := range out.SecurityGroups {
			l := leftover(SecurityGroup, aws.ToString(g.GroupId), g.Tags)
			l.Name = aws.ToString(g.GroupName)
			groups = append(groups, l)
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		gin.NextToken = out.NextToken
	}

	for _, batch := range [][]Leftover{instances, pairs, groups} {
		sort.Slice(batch, func(i, j int) bool { return batch[i].ID < batch[j].ID })
		for _, l := range batch {
			isDead, err := dead(ctx, l, opts)
			if err != nil {
				return rep, fmt.Errorf("%s %s: is its run alive? %w", l.Kind, l.ID, err)
			}
			if !isDead {
				rep.Kept++
				continue
			}
			if opts.DryRun {
				l.Action = "would remove"
			} else {
				l.Action, l.Err = remove(ctx, api, l)
			}
			rep.Leftovers = append(rep.Leftovers, l)
		}
	}
	return rep, rep.Err()
}

func leftover(kind, id string, tags []types.Tag) Leftover {
	l := Leftover{Kind: kind, ID: id}
	for _, t := range tags {
		switch aws.ToString(t.Key) {
		case TagRunID:
			l.RunID = aws.ToString(t.Value)
		case TagExpiresAt:
			l.ExpiresAt, _ = time.Parse(time.RFC3339, aws.ToString(t.Value))
		case TagImage:
			l.Image = aws.ToString(t.Value)
		case TagFingerprint:
			l.Fingerprint = aws.ToString(t.Value)
		case "Name":
			if l.Name == "" {
				l.Name = aws.ToString(t.Value)
			}
		}
	}
	return l
}

// dead: not this run's, and past its expiry or, before it, its run holds no build lease.
// Without a readable expiry nobody can tell whether its run is alive: leave it.
func dead(ctx context.Context, l Leftover, opts Options) (bool, error) {
	if l.ExpiresAt.IsZero() || (opts.RunID != "" && l.RunID == opts.RunID) {
		return false, nil
	}
	if l.ExpiresAt.Before(opts.Now) {
		return true, nil
	}
	if opts.Building == nil || l.RunID == "" || l.Image == "" || l.Fingerprint == "" {
		return false, nil
	}
	building, err := opts.Building(ctx, l.RunID, l.Image, l.Fingerprint)
	return !building, err
}

func remove(ctx context.Context, api EC2, l Leftover) (string, error) {
	var err error
	switch l.Kind {
	case Instance:
		_, err = api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{l.ID}})
	case KeyPair:
		_, err = api.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: aws.String(l.ID)})
	case SecurityGroup:
		_, err = api.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(l.ID)})
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "DependencyViolation" {
			return "still in use by an instance being terminated: the next sweep removes it", nil
		}
	}
	if err != nil {
		return "", awsio.Explain(err, "EC2")
	}
	return "removed", nil
}
