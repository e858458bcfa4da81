package main

import (
	"context"
	"fmt"
	"testing/fstest"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/toolchain"
)

// toolchainImage names the pinned toolchain image for the pins in toolchain.env. No registry
// host: the engine resolves it like any unqualified name (a mirror can serve it).
// Keep in sync with dagger/toolchain/build.sh.
func toolchainImage(v toolchain.Versions) string {
	return fmt.Sprintf("amichain/toolchain:packer-%s-amazon-%s-ansible-%s-core-%s",
		v["PACKER_VERSION"], v["PACKER_PLUGIN_AMAZON_VERSION"], v["PACKER_PLUGIN_ANSIBLE_VERSION"], v["ANSIBLE_CORE_VERSION"])
}

// loadTools reads the pins from the source being built, so that a branch bumping a tool
// builds with that tool.
func loadTools(ctx context.Context, source *dagger.Directory) (toolchain.Versions, error) {
	data, err := source.File(toolchain.DefaultPath).Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s from the source directory: %w", toolchain.DefaultPath, err)
	}
	return toolchain.Load(fstest.MapFS{toolchain.DefaultPath: {Data: []byte(data)}}, toolchain.DefaultPath)
}

// defaultToolchain is the pinned toolchain container for the pins in v.
func defaultToolchain(v toolchain.Versions) *dagger.Container {
	return dag.Container().From(toolchainImage(v))
}

// Tools prints the toolchain container's Packer, plugins and Ansible versions.
func (m *Amichain) Tools(ctx context.Context) (string, error) {
	ctr, err := m.toolchain(ctx)
	if err != nil {
		return "", err
	}
	return ctr.WithExec([]string{"sh", "-c", "packer version && packer plugins installed && ansible-playbook --version | head -n1"}).Stdout(ctx)
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
