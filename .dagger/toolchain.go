package main

import (
	"context"
	"fmt"
	"testing/fstest"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/toolchain"
)

// Where the toolchain keeps Packer's plugins; installed at build time, so Packer never
// downloads one when it runs.
const pluginPath = "/opt/packer/plugins"

// goModule is a Go module the toolchain builds a binary from, pinned in toolchain.env.
type goModule struct {
	name, path, versionKey, sumKey string
}

var toolchainModules = []goModule{
	{"packer", "github.com/hashicorp/packer", "PACKER_VERSION", "PACKER_SUM"},
	{"amazon", "github.com/hashicorp/packer-plugin-amazon", "PACKER_PLUGIN_AMAZON_VERSION", "PACKER_PLUGIN_AMAZON_SUM"},
	{"ansible", "github.com/hashicorp/packer-plugin-ansible", "PACKER_PLUGIN_ANSIBLE_VERSION", "PACKER_PLUGIN_ANSIBLE_SUM"},
}

// buildModule downloads a pinned module from the Go module proxy, refuses it unless its zip
// hash is the pinned one, and builds its main package. `go install` cannot build Packer: its
// go.mod has a replace directive.
const buildModule = `set -eu
json=$(cd /tmp && go mod download -json "$MODULE@v$VERSION")
sum=$(echo "$json" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p')
dir=$(echo "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [ "$sum" != "$SUM" ]; then
  echo "$MODULE@v$VERSION: the module's sum is $sum but toolchain.env pins $SUM: not building it (if you bumped the version, update the pin)" >&2
  exit 1
fi
cp -R "$dir" /build && chmod -R u+w /build
cd /build && go build -trimpath -ldflags=-s -o /out/bin .
`

// buildToolchain is the pinned toolchain: Packer and its plugins compiled in goImage from
// their sum-checked Go modules, run on debianImage with the pinned ansible-core and ssh.
// Every step is an ordinary exec, so the engine caches it by the pins and base images.
func buildToolchain(v toolchain.Versions, goImage, debianImage string) (*dagger.Container, error) {
	for _, m := range toolchainModules {
		if v[m.versionKey] == "" || v[m.sumKey] == "" {
			return nil, fmt.Errorf("%s: %s and %s must be set", toolchain.DefaultPath, m.versionKey, m.sumKey)
		}
	}
	golang := dag.Container().From(goImage).
		WithEnvVariable("CGO_ENABLED", "0").
		WithEnvVariable("GOTOOLCHAIN", "local").
		WithEnvVariable("GOFLAGS", "-modcacherw").
		// The plugins' sums are not in the checksum database; toolchain.env pins them instead.
		WithEnvVariable("GONOSUMDB", "github.com/hashicorp/packer-plugin-amazon,github.com/hashicorp/packer-plugin-ansible").
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("amichain-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("amichain-go-build"))
	bins := map[string]*dagger.File{}
	for _, m := range toolchainModules {
		bins[m.name] = golang.
			WithEnvVariable("MODULE", m.path).
			WithEnvVariable("VERSION", v[m.versionKey]).
			WithEnvVariable("SUM", v[m.sumKey]).
			WithExec([]string{"sh", "-c", buildModule}).
			File("/out/bin")
	}
	ctr := ansibleToolchain(v, debianImage).
		WithEnvVariable("CHECKPOINT_DISABLE", "1").
		WithEnvVariable("PACKER_PLUGIN_PATH", pluginPath).
		WithFile("/usr/local/bin/packer", bins["packer"], dagger.ContainerWithFileOpts{Permissions: 0o755})
	for _, name := range []string{"amazon", "ansible"} {
		bin := "/tmp/packer-plugin-" + name
		ctr = ctr.WithFile(bin, bins[name], dagger.ContainerWithFileOpts{Permissions: 0o755}).
			WithExec([]string{"packer", "plugins", "install", "--path", bin, "github.com/hashicorp/" + name}).
			WithoutFile(bin)
	}
	return ctr, nil
}

// ansibleToolchain is the toolchain's base: debianImage with the pinned ansible-core and ssh.
// The container target needs only this, so it never waits for Packer to compile.
func ansibleToolchain(v toolchain.Versions, debianImage string) *dagger.Container {
	return dag.Container().From(debianImage).
		WithEnvVariable("DEBIAN_FRONTEND", "noninteractive").
		// Without --no-install-recommends ansible-core pulls 260 MB of collections.
		WithExec([]string{"sh", "-c", `apt-get update -qq &&
apt-get install -y -qq --no-install-recommends "ansible-core=$0-*" openssh-client ca-certificates >/dev/null &&
rm -rf /var/lib/apt/lists/*`, v["ANSIBLE_CORE_VERSION"]}).
		WithoutEnvVariable("DEBIAN_FRONTEND")
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

// Tools prints the toolchain container's Packer, plugins and Ansible versions.
func (m *Amichain) Tools(ctx context.Context) (string, error) {
	ctr, err := m.toolchain(ctx)
	if err != nil {
		return "", err
	}
	return ctr.WithExec([]string{"sh", "-c", "packer version && packer plugins installed && ansible-playbook --version | head -n1"}).Stdout(ctx)
}

// Toolchain returns the container Packer and Ansible run in.
//
// It is the one given with --toolchain, else the pinned toolchain built from toolchain.env.
func (m *Amichain) Toolchain(ctx context.Context) (*dagger.Container, error) {
	return m.toolchain(ctx)
}

func (m *Amichain) toolchain(ctx context.Context) (*dagger.Container, error) {
	if m.ToolchainCtr != nil {
		return m.ToolchainCtr, nil
	}
	v, err := loadTools(ctx, m.Source)
	if err != nil {
		return nil, fmt.Errorf("toolchain: %w", err)
	}
	return buildToolchain(v, m.GoImage, m.DebianImage)
}

// ansible is the container that provides Ansible: the one given with --toolchain, else the
// pinned toolchain's Ansible layer.
func (m *Amichain) ansible(ctx context.Context) (*dagger.Container, error) {
	if m.ToolchainCtr != nil {
		return m.ToolchainCtr, nil
	}
	v, err := loadTools(ctx, m.Source)
	if err != nil {
		return nil, fmt.Errorf("toolchain: %w", err)
	}
	return ansibleToolchain(v, m.DebianImage), nil
}
