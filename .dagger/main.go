// The amichain Dagger module: builds the AMI tree declared in amichain.yaml with Packer and
// Ansible in a pinned toolchain container, and records the AMI ids in S3. Staleness is decided
// by content fingerprints (github.com/amichain/amichain/core); this module is glue.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"time"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/ami"
	"github.com/amichain/amichain/core/run"
	"github.com/amichain/amichain/core/upstream"
)

// Amichain builds a tree of AMIs, exactly the images whose inputs changed.
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
	ToolchainCtr *dagger.Container
	// +private
	GoImage string
	// +private
	DebianImage string
	// +private
	Parallel int
	// +private
	MaxAge string
	// +private
	Force []string
	// +private
	LeaseTTL string

	// +private
	S3Endpoint string
	// +private
	EC2Endpoint string
	// +private
	SSMEndpoint string

	// Set by with-stand-ins.

	// +private
	ServiceNames []string
	// +private
	Services []*dagger.Service
	// +private
	PackerVars []string
	// +private
	SecretPaths []string
	// +private
	SecretFiles []*dagger.Secret
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
	// The S3 bucket that holds the AMI records. Required by everything that touches AWS.
	// +optional
	bucket string,
	// The key prefix of the records in the bucket.
	// +default="amichain"
	prefix string,
	// The AWS region the images are built in.
	// +default="us-east-1"
	region string,
	// The regions each AMI is copied to, e.g. eu-west-1,ap-southeast-2.
	// +optional
	copyRegions []string,
	// The AWS access key id, e.g. env://AWS_ACCESS_KEY_ID. Without keys or a web identity
	// token, the AWS SDK's default chain of the engine's host is used.
	// +optional
	awsAccessKeyId *dagger.Secret,
	// The AWS secret access key, e.g. env://AWS_SECRET_ACCESS_KEY.
	// +optional
	awsSecretAccessKey *dagger.Secret,
	// The AWS session token of temporary credentials, e.g. env://AWS_SESSION_TOKEN.
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
	// A container to run Packer and Ansible in instead of the pinned toolchain the module
	// builds from toolchain.env. It needs sh, packer with its plugins, and ansible-playbook.
	// +optional
	toolchain *dagger.Container,
	// The Go image the toolchain's Packer and plugins are compiled in. Pin it by digest in
	// production (golang:1.26-bookworm@sha256:...).
	// +default="golang:1.26-bookworm"
	goImage string,
	// The Debian image the toolchain runs on. Pin it by digest in production
	// (debian:bookworm-slim@sha256:...).
	// +default="debian:bookworm-slim"
	debianImage string,
	// How many images are built at once.
	// +default=4
	parallel int,
	// Rebuild images built longer ago than this, e.g. 720h, even if unchanged: base images
	// need OS updates.
	// +optional
	maxAge string,
	// The images to rebuild even if up to date, e.g. web,worker.
	// +optional
	force []string,
	// How long a run's claim to build an image lasts unless renewed (every third of it): a
	// killed run blocks others, and keeps its builder from the sweep, for at most this long.
	// +default="3m"
	leaseTtl string,
	// An S3-compatible endpoint for the records instead of AWS S3, e.g. http://minio:9000.
	// +optional
	recordsEndpoint string,
	// An EC2 API endpoint instead of AWS's, e.g. http://localstack:4566: the module's lookups
	// and Packer use it.
	// +optional
	computeEndpoint string,
	// An SSM endpoint instead of AWS's, for the parameters the current AMIs are published under.
	// +optional
	paramsEndpoint string,
) (*Amichain, error) {
	if maxAge != "" {
		if _, err := time.ParseDuration(maxAge); err != nil {
			return nil, fmt.Errorf("--max-age %q: want a duration such as 720h", maxAge)
		}
	}
	if d, err := time.ParseDuration(leaseTtl); err != nil || d < 3*time.Second {
		return nil, fmt.Errorf("--lease-ttl %q: want a duration of at least 3s, such as 3m", leaseTtl)
	}
	return &Amichain{
		Source: source, Git: git, Bucket: bucket, Prefix: prefix, Region: region, CopyRegions: copyRegions,
		AwsAccessKeyID: awsAccessKeyId, AwsSecretAccessKey: awsSecretAccessKey, AwsSessionToken: awsSessionToken,
		AwsWebIdentityToken: awsWebIdentityToken, AwsRoleArn: awsRoleArn,
		Commit: commit, Branch: branch, ToolchainCtr: toolchain, GoImage: goImage, DebianImage: debianImage,
		Parallel: parallel, MaxAge: maxAge, Force: force, LeaseTTL: leaseTtl, S3Endpoint: recordsEndpoint, EC2Endpoint: computeEndpoint,
		SSMEndpoint: paramsEndpoint,
	}, nil
}

// WithStandIns points amichain at stand-ins for AWS, for tests and runs without an account.
//
// Services are reachable by name from Packer's container and from the module's own code: an
// endpoint (records-endpoint, compute-endpoint) whose host is a service's name reaches it.
func (m *Amichain) WithStandIns(
	// The services, e.g. tcp://localhost:9000,tcp://localhost:4566.
	// +optional
	services []*dagger.Service,
	// The name each service is reached by, in the order of services, e.g. s3,ec2.
	// +optional
	serviceNames []string,
	// Packer variables for every build, as NAME=VALUE, e.g. ssh_port=2222.
	// +optional
	packerVars []string,
	// Secrets mounted as files in Packer's container, e.g. file://./id_ed25519.
	// +optional
	secretFiles []*dagger.Secret,
	// Where each secret file is mounted, in the order of secret-files.
	// +optional
	secretPaths []string,
) (*Amichain, error) {
	if len(services) != len(serviceNames) {
		return nil, fmt.Errorf("with-stand-ins: %d services but %d service names: give one name per service", len(services), len(serviceNames))
	}
	if len(secretFiles) != len(secretPaths) {
		return nil, fmt.Errorf("with-stand-ins: %d secret files but %d secret paths: give one path per secret", len(secretFiles), len(secretPaths))
	}
	m.Services, m.ServiceNames = append(m.Services, services...), append(m.ServiceNames, serviceNames...)
	m.SecretFiles, m.SecretPaths = append(m.SecretFiles, secretFiles...), append(m.SecretPaths, secretPaths...)
	m.PackerVars = append(m.PackerVars, packerVars...)
	return m, nil
}

// load exports the source into the module's filesystem and wires a run over it: records,
// leases and liveness checks against AWS, and, to build, the Packer runner.
func (m *Amichain) load(ctx context.Context, aws *awsAccess, runID string, withBuilder bool) (*run.Run, error) {
	dir, err := m.exportSource(ctx)
	if err != nil {
		return nil, err
	}
	commit, branch := m.gitInfo(ctx)
	opts := run.Options{
		Source: os.DirFS(dir), Records: aws.store, EC2: aws.ec2, Force: m.Force,
		Parallel: m.Parallel, Commit: commit, Branch: branch,
		RunID: runID, Leases: aws.store,
		Live: ami.NewChecker(func(ctx context.Context, region string) (upstream.DescribeImagesAPI, error) {
			return upstream.NewClient(ctx, region, aws.ec2Endpoint, aws.creds)
		}),
	}
	if m.MaxAge != "" {
		opts.MaxAge, _ = time.ParseDuration(m.MaxAge)
	}
	opts.LeaseTTL, _ = time.ParseDuration(m.LeaseTTL)
	if opts.Params, err = m.params(ctx, aws); err != nil {
		return nil, err
	}
	if withBuilder {
		if opts.Builder, err = m.builder(ctx, aws); err != nil {
			return nil, err
		}
	}
	return run.Load(ctx, opts)
}

// exportSource copies the source into a new folder of the module's filesystem, where the core
// reads it as plain files.
func (m *Amichain) exportSource(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "amichain-src-")
	if err != nil {
		return "", err
	}
	if _, err := m.Source.Export(ctx, dir); err != nil {
		return "", fmt.Errorf("export the source: %w", err)
	}
	return dir, nil
}

// newRunID names one run: in its leases and in the tags of the builder instances it starts.
func newRunID(now time.Time) string {
	return now.UTC().Format("20060102T150405Z") + "-" + strings.ToLower(rand.Text()[:8])
}
