// The amichain Dagger module: builds the AMI tree declared in amichain.yaml with Packer and
// Ansible in a pinned toolchain container, and records the AMI ids in S3.
package main

import (
	"context"
	"fmt"

	"dagger/amichain/internal/dagger"
)

type Amichain struct {
	// +private
	Source *dagger.Directory
	// +private
	Toolchain *dagger.Container
}

func New(
	// The repository. Only what images are made of is uploaded.
	// +defaultPath="/"
	// +ignore=[".git", ".tools", ".dagger", "core", "internal", "e2e"]
	source *dagger.Directory,
	// The container Packer runs in. Default: the pinned toolchain image for toolchain.env
	// (amichain/toolchain:TAG, see dagger/README.md).
	// +optional
	toolchain *dagger.Container,
) *Amichain {
	return &Amichain{Source: source, Toolchain: toolchain}
}

// Tools prints the toolchain container's Packer, plugins and Ansible versions.
func (m *Amichain) Tools(ctx context.Context) (string, error) {
	ctr, err := m.toolchain(ctx)
	if err != nil {
		return "", err
	}
	return ctr.WithExec([]string{"sh", "-c", "packer version && packer plugins installed && ansible-playbook --version | head -n1 && ssh -V 2>&1"}).Stdout(ctx)
}

func (m *Amichain) toolchain(ctx context.Context) (*dagger.Container, error) {
	if m.Toolchain != nil {
		return m.Toolchain, nil
	}
	v, err := loadTools(ctx, m.Source)
	if err != nil {
		return nil, fmt.Errorf("toolchain: %w", err)
	}
	return defaultToolchain(v), nil
}
