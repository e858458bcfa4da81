package main

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/amichain/amichain/core/build"
)

// Image is one image of the tree after a run: built, reused or up to date.
type Image struct {
	Name string
	// The AMI children are built from (build region).
	Ami string
	// Every AMI id, as region=ami.
	Amis        []string
	Region      string
	Fingerprint string
	ParentAmi   string
	// built, reused or up to date.
	Status  string
	Reasons []string
}

// Base builds the base image if it is stale, and returns it.
// +cache="never"
func (m *Amichain) Base(ctx context.Context) (*Image, error) { return m.image(ctx, "base") }

// Web builds the web image (and base first, if stale), and returns it.
// +cache="never"
func (m *Amichain) Web(ctx context.Context) (*Image, error) { return m.image(ctx, "web") }

// Worker builds the worker image (and base first, if stale), and returns it.
// +cache="never"
func (m *Amichain) Worker(ctx context.Context) (*Image, error) { return m.image(ctx, "worker") }

// BuildAgent builds the build-agent image (and base first, if stale), and returns it.
// +cache="never"
func (m *Amichain) BuildAgent(ctx context.Context) (*Image, error) {
	return m.image(ctx, "build-agent")
}

// DeployAgent builds the deploy-agent image (and base first, if stale), and returns it.
// +cache="never"
func (m *Amichain) DeployAgent(ctx context.Context) (*Image, error) {
	return m.image(ctx, "deploy-agent")
}

func (m *Amichain) image(ctx context.Context, name string) (*Image, error) {
	sum, err := m.build(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%s\n%w", sum, err)
	}
	i := slices.IndexFunc(sum.Outcomes, func(o build.Outcome) bool { return o.Image == name })
	if i < 0 {
		return nil, fmt.Errorf("image %s: not in the run's summary", name)
	}
	o := sum.Outcomes[i]
	img := &Image{Name: o.Image, Ami: o.AMI(), Region: o.Region, Fingerprint: o.Fingerprint,
		ParentAmi: o.ParentAMI, Status: string(o.Status), Reasons: o.Reasons}
	for _, region := range slices.Sorted(maps.Keys(o.AMIs)) {
		img.Amis = append(img.Amis, region+"="+o.AMIs[region])
	}
	return img, nil
}
