package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/core/packer"
)

// traceDir holds the audit hook that reports what Ansible reads (core/ansibletrace). It is
// added to any toolchain, the pinned one or a team's own.
const traceDir = "/opt/amichain/ansibletrace"

// builder is the one Packer runner (core/packer) with a container exec: the toolchain with the
// sources mounted read-only, the run's credentials and the stand-ins' services and files.
func (m *Amichain) builder(ctx context.Context, aws *awsAccess) (*packer.Runner, error) {
	ctr, err := m.toolchain(ctx)
	if err != nil {
		return nil, err
	}
	ctr = ctr.
		WithMountedDirectory("/src", m.Source, dagger.ContainerWithMountedDirectoryOpts{ReadOnly: true}).
		WithWorkdir("/src").
		WithEnvVariable("CHECKPOINT_DISABLE", "1").
		WithEnvVariable("AWS_REGION", m.Region).
		WithNewFile(traceDir+"/"+ansibletrace.HookFile, string(ansibletrace.Hook()))
	for _, kv := range ansibletrace.Env(traceDir, nil) {
		k, v, _ := strings.Cut(kv, "=")
		ctr = ctr.WithEnvVariable(k, v)
	}
	if ctr, err = withCredentials(ctx, ctr, aws.creds); err != nil {
		return nil, err
	}
	for i, name := range m.ServiceNames {
		ctr = ctr.WithServiceBinding(name, m.Services[i])
	}
	for i, path := range m.SecretPaths {
		ctr = ctr.WithMountedSecret(path, m.SecretFiles[i])
	}
	vars := map[string]string{}
	if m.EC2Endpoint != "" {
		vars["ec2_endpoint"] = m.EC2Endpoint // the container reaches a named service by its alias
	}
	if len(m.CopyRegions) > 0 {
		vars["copy_regions"] = `["` + strings.Join(m.CopyRegions, `", "`) + `"]`
	}
	for _, kv := range m.PackerVars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("with-stand-ins --packer-vars %q: want NAME=VALUE", kv)
		}
		vars[k] = v
	}
	return &packer.Runner{Exec: containerExec{ctr: ctr}, Vars: vars, Region: m.Region}, nil
}

// containerExec runs packer as an exec in the toolchain container.
type containerExec struct {
	ctr *dagger.Container
}

// Run runs packer with its output merged, as on a terminal. Every exec carries a nonce: a build
// creates AWS resources, so the engine must never answer one from its cache. A cancelled
// exec dies with the engine session, without Packer's interrupt cleanup; builder instances
// are tagged so that the next run finds what it left.
func (c containerExec) Run(ctx context.Context, args []string, line func(string)) (int, error) {
	ctr := c.ctr.WithEnvVariable("AMICHAIN_EXEC_NONCE", rand.Text()).
		WithExec(append([]string{"sh", "-c", `exec packer "$@" 2>&1`, "packer"}, args...),
			dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	ctr, err := ctr.Sync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("cancelled: %w", ctx.Err())
		}
		var execErr *dagger.ExecError
		if errors.As(err, &execErr) {
			return 0, fmt.Errorf("run packer in the toolchain container: %s", execErr.Stderr)
		}
		return 0, fmt.Errorf("run packer in the toolchain container: %w", err)
	}
	out, err := ctr.Stdout(ctx)
	if err != nil {
		return 0, fmt.Errorf("read packer's output: %w", err)
	}
	code, err := ctr.ExitCode(ctx)
	if err != nil {
		return 0, fmt.Errorf("read packer's exit code: %w", err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		line(l)
	}
	return code, nil
}
