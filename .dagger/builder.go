package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/packer"
)

// containerBuilder runs Packer in the toolchain container: the same commands as the host
// runner (core/packer), the AMI id parsed by the same code.
type containerBuilder struct {
	base   *dagger.Container
	region string
	vars   map[string]string
}

func (m *Amichain) builder(ctx context.Context) (*containerBuilder, error) {
	ctr, err := m.toolchain(ctx)
	if err != nil {
		return nil, err
	}
	ctr = ctr.
		WithMountedDirectory("/src", m.Source, dagger.ContainerWithMountedDirectoryOpts{ReadOnly: true}).
		WithWorkdir("/src").
		WithEnvVariable("CHECKPOINT_DISABLE", "1").
		WithEnvVariable("AWS_REGION", m.Region)
	switch {
	case m.AwsWebIdentityToken != nil:
		ctr = ctr.WithMountedSecret("/run/amichain/web-identity-token", m.AwsWebIdentityToken).
			WithEnvVariable("AWS_WEB_IDENTITY_TOKEN_FILE", "/run/amichain/web-identity-token").
			WithEnvVariable("AWS_ROLE_ARN", m.AwsRoleArn)
	case m.AwsAccessKeyID != nil:
		ctr = ctr.WithSecretVariable("AWS_ACCESS_KEY_ID", m.AwsAccessKeyID).
			WithSecretVariable("AWS_SECRET_ACCESS_KEY", m.AwsSecretAccessKey)
		if m.AwsSessionToken != nil {
			ctr = ctr.WithSecretVariable("AWS_SESSION_TOKEN", m.AwsSessionToken)
		}
	}
	for i, name := range m.ServiceNames {
		ctr = ctr.WithServiceBinding(name, m.Services[i])
	}
	for i, path := range m.SecretPaths {
		ctr = ctr.WithMountedSecret(path, m.Secrets[i])
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
		if !ok {
			return nil, fmt.Errorf("packer variable %q: want NAME=VALUE", kv)
		}
		vars[k] = v
	}
	return &containerBuilder{base: ctr, region: m.Region, vars: vars}, nil
}

func (b *containerBuilder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	cmds, err := packer.NewCommands(req, b.region, b.vars)
	if err != nil {
		return build.Result{}, err
	}
	// The engine caches an exec by its command, environment and mounted content: the
	// fingerprint makes that cache key the image's content. A forced build must run again.
	ctr := b.base.WithEnvVariable("AMICHAIN_FINGERPRINT", req.Fingerprint)
	if req.Forced {
		ctr = ctr.WithEnvVariable("AMICHAIN_FORCED_AT", time.Now().UTC().Format(time.RFC3339Nano))
	}
	ctr = ctr.WithExec(append([]string{"packer"}, cmds.Init...)).
		WithExec(append([]string{"packer"}, cmds.Validate...))
	// A failed exec is an error, and errors are not cached: the next run tries again.
	out, err := ctr.WithExec(append([]string{"packer"}, cmds.Build...)).Stdout(ctx)
	var execErr *dagger.ExecError
	if !errors.As(err, &execErr) {
		if err != nil {
			return build.Result{}, fmt.Errorf("packer build %s: %w", req.Image.Name, err)
		}
		return packer.ParseResult(req.Image.Name, b.region, 0, strings.NewReader(out))
	}
	// The build's output is judged like the host runner's; init or validate failing is not.
	step := "build"
	if len(execErr.Cmd) > 1 {
		step = execErr.Cmd[1]
	}
	if step == "build" {
		return packer.ParseResult(req.Image.Name, b.region, execErr.ExitCode, strings.NewReader(execErr.Stdout))
	}
	return build.Result{}, fmt.Errorf("packer %s %s failed (exit %d): %s", step, req.Image.Name,
		execErr.ExitCode, strings.TrimSpace(lastLines(execErr.Stdout+"\n"+execErr.Stderr, 15)))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
