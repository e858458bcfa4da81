package main

import (
	"context"
	"fmt"
	"time"

	"github.com/amichain/amichain/core/prune"
	"github.com/amichain/amichain/core/ssmparam"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/core/upstream"
)

// Prune deregisters the AMIs amichain built that nothing needs, and deletes their snapshots.
//
// Per image and region it keeps the current AMI, the last keep-last, those younger than
// keep-younger-than, every AMI a child's current record was built from, and every AMI in use
// (instances, launch templates, DescribeImageReferences). Only AMIs of this account tagged by
// amichain are considered. A dry run unless --apply: it prints what it would delete and why it
// keeps the rest.
// +cache="never"
func (m *Amichain) Prune(
	ctx context.Context,
	// Deregister and delete; without it, only print what would be deleted.
	// +optional
	apply bool,
	// How many of each image's newest AMIs to keep in each region.
	// +default=3
	keepLast int,
	// Keep every AMI younger than this, e.g. 168h; 0s keeps none by age.
	// +default="168h"
	keepYoungerThan string,
) (string, error) {
	young, err := time.ParseDuration(keepYoungerThan)
	if err != nil || young < 0 {
		return "", fmt.Errorf("--keep-younger-than %q: want a duration such as 168h", keepYoungerThan)
	}
	aws, err := m.aws(ctx)
	if err != nil {
		return "", err
	}
	// Prune needs the tree's names and parents only, not the files images are made of.
	data, err := m.Source.File(tree.DefaultPath).Contents(ctx)
	if err != nil {
		return "", fmt.Errorf("read %s from the source directory: %w", tree.DefaultPath, err)
	}
	t, err := tree.Parse(tree.DefaultPath, []byte(data))
	if err != nil {
		return "", err
	}
	rep, err := prune.Prune(ctx, func(ctx context.Context, region string) (prune.EC2, error) {
		return upstream.NewClient(ctx, region, aws.ec2Endpoint, aws.creds)
	}, aws.store, prune.Options{
		Tree: t, Regions: append([]string{m.Region}, m.CopyRegions...),
		KeepLast: keepLast, KeepYoungerThan: young, Now: time.Now(), Apply: apply,
	})
	if err != nil {
		return "", err
	}
	if err := rep.Err(); err != nil {
		return "", fmt.Errorf("%s%w", rep, err)
	}
	return rep.String(), nil
}

// params are the SSM clients the current AMIs are published with.
func (m *Amichain) params(ctx context.Context, aws *awsAccess) (ssmparam.Clients, error) {
	endpoint, err := m.reach(ctx, m.SSMEndpoint)
	if err != nil {
		return nil, fmt.Errorf("--params-endpoint: %w", err)
	}
	return ssmparam.Regional(endpoint, aws.creds), nil
}
