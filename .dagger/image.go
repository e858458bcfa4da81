package main

import (
	"context"
	"fmt"
	"slices"

	"dagger/amichain/internal/dagger"
)

// Image is one image of amichain.yaml: plan it, build it, or read its current AMI.
type Image struct {
	// The image's name in amichain.yaml.
	Name string
	// +private
	Module *Amichain
}

// Image selects one image of amichain.yaml by name, e.g. web.
func (m *Amichain) Image(
	// The image's name in amichain.yaml.
	name string,
) *Image {
	return &Image{Name: name, Module: m}
}

// Plan says whether the image (and each of its ancestors) is up to date, reused or built, and why.
// +cache="never"
func (i *Image) Plan(ctx context.Context) (*Plan, error) {
	return i.Module.plan(ctx, i.Name)
}

// Build builds the image if its inputs changed, after its stale ancestors, and returns it.
// +cache="never"
func (i *Image) Build(ctx context.Context) (*ImageResult, error) {
	res, err := i.Module.build(ctx, i.Name)
	if err != nil {
		return nil, err
	}
	j := slices.IndexFunc(res.Images, func(r *ImageResult) bool { return r.Name == i.Name })
	if j < 0 {
		return nil, fmt.Errorf("image %s: not in the run's result", i.Name)
	}
	return res.Images[j], nil
}

// Ami returns the image's current AMI id in the build region, from its record; builds nothing.
// +cache="never"
func (i *Image) Ami(ctx context.Context) (string, error) {
	aws, err := i.Module.aws(ctx)
	if err != nil {
		return "", err
	}
	rec, err := aws.store.Current(ctx, i.Name)
	if err != nil {
		return "", err
	}
	if rec == nil {
		return "", fmt.Errorf("image %s has no record in s3://%s/%s yet: build it first (build-all, or image --name %s build)", i.Name, i.Module.Bucket, i.Module.Prefix, i.Name)
	}
	return rec.AMI() + "\n", nil
}

// Container builds the image as a container, with no AWS: converged, idempotent, verified.
//
// It is built FROM its parent's container, its playbook applied by the toolchain's Ansible
// (see test-containers); open a shell in it with terminal, or export or publish it.
func (i *Image) Container(ctx context.Context) (*dagger.Container, error) {
	return i.Module.container(ctx, i.Name)
}

// Base is the base image of the reference tree (image --name base).
func (m *Amichain) Base() *Image { return m.Image("base") }

// Web is the web image of the reference tree (image --name web).
func (m *Amichain) Web() *Image { return m.Image("web") }

// Worker is the worker image of the reference tree (image --name worker).
func (m *Amichain) Worker() *Image { return m.Image("worker") }

// BuildAgent is the build-agent image of the reference tree (image --name build-agent).
func (m *Amichain) BuildAgent() *Image { return m.Image("build-agent") }

// DeployAgent is the deploy-agent image of the reference tree (image --name deploy-agent).
func (m *Amichain) DeployAgent() *Image { return m.Image("deploy-agent") }
