package record

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/amichain/amichain/core/awsio"
)

// Options select where the records live.
type Options struct {
	// Region overrides AWS_REGION and the profile's region.
	Region string
	// Endpoint is an S3-compatible server's URL (e.g. versitygw); empty means AWS S3.
	Endpoint string
	// Credentials replace the default chain, e.g. keys handed to the Dagger module as secrets.
	Credentials aws.CredentialsProvider
	// Limits bound every request (timeout, attempts); the zero value takes awsio's defaults.
	Limits awsio.Limits
}

// NewClient returns an S3 client using opts.Credentials or else the SDK's default credential
// chain (environment, profile, SSO, container or instance role). It fails early, without printing any secret,
// when no credentials or no region can be found.
func NewClient(ctx context.Context, opts Options) (*s3.Client, error) {
	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w (check AWS_PROFILE, AWS_CONFIG_FILE and ~/.aws/config)", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: pass --region or set AWS_REGION")
	}
	if cfg.Credentials == nil {
		return nil, errors.New(noCredentials)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", noCredentials, err)
	}
	opts.Limits.Apply(&cfg)
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			o.UsePathStyle = true
			// S3-compatible servers may not understand streamed (aws-chunked) checksums.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			// Objects there often carry no checksum; saying so on every read is noise.
			o.DisableLogOutputChecksumValidationSkipped = true
		}
	}), nil
}

const noCredentials = "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, " +
	"or run where an instance or container role is available"
