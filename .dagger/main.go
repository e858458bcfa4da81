// The amichain Dagger module: builds the AMI tree declared in amichain.yaml with Packer and
// Ansible in a pinned toolchain container, and records the AMI ids in S3. Staleness is decided
// by content fingerprints (github.com/amichain/amichain/core); this module is glue.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/run"
)

type Amichain struct {
	// +private
	Source *dagger.Directory
	// +private
	Git *dagger.Directory
	// +private
	Bucket string
	// +private
	Prefix string
	// +private
	Region string
	// +private
	CopyRegions []string
	// +private
	S3Endpoint string
	// +private
	EC2Endpoint string
	// +private
	AwsAccessKeyID *dagger.Secret
	// +private
	AwsSecretAccessKey *dagger.Secret
	// +private
	AwsSessionToken *dagger.Secret
	// +private
	AwsWebIdentityToken *dagger.Secret
	// +private
	AwsRoleArn string
	// +private
	Commit string
	// +private
	Branch string
	// +private
	Toolchain *dagger.Container
	// +private
	Parallel int
	// +private
	MaxAge string
	// +private
	Force []string
	// +private
	ServiceNames []string
	// +private
	Services []*dagger.Service
	// +private
	PackerVars []string
	// +private
	SecretPaths []string
	// +private
	Secrets []*dagger.Secret
}

func New(
	// The repository. Only what images are made of is uploaded.
	// +defaultPath="/"
	// +ignore=["*", "!amichain.yaml", "!toolchain.env", "!packer", "!ansible", "**/*_test.go"]
	source *dagger.Directory,
	// The repository's git metadata, to read the commit and branch recorded with each AMI.
	// +defaultPath="/.git"
	// +ignore=["objects", "lfs", "logs", "hooks", "index", "modules"]
	// +optional
	git *dagger.Directory,
	// The S3 bucket holding the records.
	bucket string,
	// Key prefix of the records in the bucket.
	// +default="amichain"
	prefix string,
	// The region images are built in.
	// +default="us-east-1"
	region string,
	// Regions each AMI is copied to.
	// +optional
	copyRegions []string,
	// An S3-compatible endpoint instead of AWS S3. A host named like a service given with
	// with-service is reached through it.
	// +optional
	s3Endpoint string,
	// An EC2 endpoint instead of AWS EC2 (tests). A host named like a service given with
	// with-service is reached through it.
	// +optional
	ec2Endpoint string,
	// AWS access key id, e.g. env://AWS_ACCESS_KEY_ID.
	// +optional
	awsAccessKeyId *dagger.Secret,
	// AWS secret access key, e.g. env://AWS_SECRET_ACCESS_KEY.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// AWS session token for temporary credentials, e.g. env://AWS_SESSION_TOKEN.
	// +optional
	awsSessionToken *dagger.Secret,
	// A web identity token (GitHub Actions OIDC) exchanged for the role in aws-role-arn.
	// +optional
	awsWebIdentityToken *dagger.Secret,
	// The IAM role to assume with aws-web-identity-token.
	// +optional
	awsRoleArn string,
	// The git commit recorded with each AMI. Default: read from the repository.
	// +optional
	commit string,
	// The git branch recorded with each AMI. Default: read from the repository.
	// +optional
	branch string,
	// The container Packer runs in. Default: the pinned toolchain image for toolchain.env
	// (amichain/toolchain:TAG, see dagger/README.md).
	// +optional
	toolchain *dagger.Container,
	// How many images to build at once.
	// +default=4
	parallel int,
	// Rebuild images built longer ago than this (e.g. 720h), even if unchanged.
	// +optional
	maxAge string,
	// Images to rebuild even if up to date.
	// +optional
	force []string,
) (*Amichain, error) {
	if maxAge != "" {
		if _, err := time.ParseDuration(maxAge); err != nil {
			return nil, fmt.Errorf("--max-age %q: want a duration such as 720h", maxAge)
		}
	}
	return &Amichain{
		Source: source, Git: git, Bucket: bucket, Prefix: prefix, Region: region, CopyRegions: copyRegions,
		S3Endpoint: s3Endpoint, EC2Endpoint: ec2Endpoint,
		AwsAccessKeyID: awsAccessKeyId, AwsSecretAccessKey: awsSecretAccessKey, AwsSessionToken: awsSessionToken,
		AwsWebIdentityToken: awsWebIdentityToken, AwsRoleArn: awsRoleArn,
		Commit: commit, Branch: branch, Toolchain: toolchain, Parallel: parallel, MaxAge: maxAge, Force: force,
	}, nil
}

// WithService makes a service reachable by name: from Packer's container (e.g. a local EC2
// API or an sshd standing in for instances) and from endpoints whose host is that name.
func (m *Amichain) WithService(name string, svc *dagger.Service) *Amichain {
	m.ServiceNames = append(m.ServiceNames, name)
	m.Services = append(m.Services, svc)
	return m
}

// WithPackerVar sets a Packer variable for every build (overrides such as ssh_port).
func (m *Amichain) WithPackerVar(name string, value string) *Amichain {
	m.PackerVars = append(m.PackerVars, name+"="+value)
	return m
}

// WithSecretFile mounts a secret as a file in Packer's container (e.g. an SSH key).
func (m *Amichain) WithSecretFile(path string, secret *dagger.Secret) *Amichain {
	m.SecretPaths = append(m.SecretPaths, path)
	m.Secrets = append(m.Secrets, secret)
	return m
}

// Plan says which images are up to date, which would be reused and which built, and why.
// It builds nothing.
// +cache="never"
func (m *Amichain) Plan(ctx context.Context) (string, error) {
	r, err := m.load(ctx, false)
	if err != nil {
		return "", err
	}
	p, err := r.Plan(ctx, "")
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// BuildAll builds every stale image: parents first, siblings in parallel, each child as soon
// as its parent is done. It prints a table of what was built, reused or up to date.
// +cache="never"
func (m *Amichain) BuildAll(ctx context.Context) (string, error) {
	sum, err := m.build(ctx, "")
	if err != nil {
		return "", fmt.Errorf("%s\n%w", sum, err)
	}
	return sum.String(), nil
}

// Ids prints the current record of every image: its AMI ids, fingerprint and origin.
// +cache="never"
func (m *Amichain) Ids(ctx context.Context) (string, error) {
	store, _, err := m.stores(ctx)
	if err != nil {
		return "", err
	}
	recs, err := store.List(ctx)
	if err != nil {
		return "", err
	}
	return formatRecords(recs), nil
}

func (m *Amichain) build(ctx context.Context, only string) (build.Summary, error) {
	r, err := m.load(ctx, true)
	if err != nil {
		return build.Summary{}, err
	}
	return r.Build(ctx, only)
}

// load exports the source into the module's filesystem and wires a run over it.
func (m *Amichain) load(ctx context.Context, withBuilder bool) (*run.Run, error) {
	if m.Bucket == "" {
		return nil, fmt.Errorf("--bucket is required: the S3 bucket that holds the AMI records")
	}
	dir, err := os.MkdirTemp("", "amichain-src-")
	if err != nil {
		return nil, err
	}
	if _, err := m.Source.Export(ctx, dir); err != nil {
		return nil, fmt.Errorf("export the source: %w", err)
	}
	store, ec2c, err := m.stores(ctx)
	if err != nil {
		return nil, err
	}
	commit, branch := m.gitInfo(ctx)
	opts := run.Options{
		Source: os.DirFS(dir), Records: store, EC2: ec2c, Force: m.Force,
		Parallel: m.Parallel, Commit: commit, Branch: branch,
	}
	if m.MaxAge != "" {
		opts.MaxAge, _ = time.ParseDuration(m.MaxAge)
	}
	if withBuilder {
		b, err := m.builder(ctx)
		if err != nil {
			return nil, err
		}
		opts.Builder = b
	}
	return run.Load(ctx, opts)
}

func formatRecords(recs []record.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-22s %-14s %-20s %s\n", "IMAGE", "AMI", "FINGERPRINT", "BUILT", "COMMIT")
	for _, r := range recs {
		fmt.Fprintf(&b, "%-14s %-22s %-14s %-20s %s\n", r.Image, r.AMI(), short(r.Fingerprint, 12),
			r.BuiltAt.UTC().Format("2006-01-02 15:04:05"), short(r.Commit, 12))
		for region, ami := range r.AMIs {
			if region != r.Region {
				fmt.Fprintf(&b, "%-14s %-22s (%s)\n", "", ami, region)
			}
		}
	}
	return b.String()
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
