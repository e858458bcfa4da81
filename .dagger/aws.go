package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/upstream"
)

// awsAccess is what a run reaches AWS with: one credentials provider, used by the module's own
// clients and handed to Packer, so both always act as the same identity.
type awsAccess struct {
	creds aws.CredentialsProvider
	store *record.Store
	ec2   *ec2.Client
}

// aws resolves the credentials and builds the record store and the EC2 client.
func (m *Amichain) aws(ctx context.Context) (*awsAccess, error) {
	creds, err := m.credentials(ctx)
	if err != nil {
		return nil, err
	}
	s3Endpoint, err := m.reach(ctx, m.S3Endpoint)
	if err != nil {
		return nil, fmt.Errorf("with-stand-ins --records-endpoint: %w", err)
	}
	s3c, err := record.NewClient(ctx, record.Options{Region: m.Region, Endpoint: s3Endpoint, Credentials: creds})
	if err != nil {
		return nil, err
	}
	ec2Endpoint, err := m.reach(ctx, m.EC2Endpoint)
	if err != nil {
		return nil, fmt.Errorf("with-stand-ins --compute-endpoint: %w", err)
	}
	ec2c, err := upstream.NewClient(ctx, m.Region, ec2Endpoint, creds)
	if err != nil {
		return nil, err
	}
	return &awsAccess{
		creds: creds,
		store: record.NewStore(s3c, record.Config{Bucket: m.Bucket, Prefix: m.Prefix}),
		ec2:   ec2c,
	}, nil
}

// credentials turns what the module was given into one credentials provider: a web identity
// token for a role, keys, or else the SDK's default chain (e.g. the engine host's role).
func (m *Amichain) credentials(ctx context.Context) (aws.CredentialsProvider, error) {
	switch {
	case m.AwsWebIdentityToken != nil:
		if m.AwsRoleArn == "" {
			return nil, fmt.Errorf("--aws-web-identity-token needs --aws-role-arn: the role to assume")
		}
		token, err := m.AwsWebIdentityToken.Plaintext(ctx)
		if err != nil {
			return nil, fmt.Errorf("read --aws-web-identity-token: %w", err)
		}
		stsc := sts.New(sts.Options{Region: m.Region})
		return aws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(stsc, m.AwsRoleArn, staticToken(token))), nil
	case m.AwsAccessKeyID != nil || m.AwsSecretAccessKey != nil:
		if m.AwsAccessKeyID == nil || m.AwsSecretAccessKey == nil {
			return nil, fmt.Errorf("give both --aws-access-key-id and --aws-secret-access-key")
		}
		id, err := m.AwsAccessKeyID.Plaintext(ctx)
		if err != nil {
			return nil, fmt.Errorf("read --aws-access-key-id: %w", err)
		}
		secret, err := m.AwsSecretAccessKey.Plaintext(ctx)
		if err != nil {
			return nil, fmt.Errorf("read --aws-secret-access-key: %w", err)
		}
		var token string
		if m.AwsSessionToken != nil {
			if token, err = m.AwsSessionToken.Plaintext(ctx); err != nil {
				return nil, fmt.Errorf("read --aws-session-token: %w", err)
			}
		}
		return credentials.NewStaticCredentialsProvider(id, secret, token), nil
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(m.Region))
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w (or pass --aws-access-key-id and --aws-secret-access-key)", err)
	}
	return cfg.Credentials, nil
}

type staticToken string

func (t staticToken) GetIdentityToken() ([]byte, error) { return []byte(t), nil }

// withCredentials gives ctr the run's credentials as secret variables, as the AWS SDK inside
// (Packer's) reads them. Temporary credentials last as long as the role's session.
func withCredentials(ctx context.Context, ctr *dagger.Container, creds aws.CredentialsProvider) (*dagger.Container, error) {
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS credentials for Packer: %w", err)
	}
	ctr = ctr.WithSecretVariable("AWS_ACCESS_KEY_ID", dag.SetSecret("amichain-aws-access-key-id", c.AccessKeyID)).
		WithSecretVariable("AWS_SECRET_ACCESS_KEY", dag.SetSecret("amichain-aws-secret-access-key", c.SecretAccessKey))
	if c.SessionToken != "" {
		ctr = ctr.WithSecretVariable("AWS_SESSION_TOKEN", dag.SetSecret("amichain-aws-session-token", c.SessionToken))
	}
	return ctr, nil
}

// reach rewrites an endpoint whose host names a service given with with-stand-ins into the
// address module code reaches that service at; other endpoints are returned as they are.
func (m *Amichain) reach(ctx context.Context, endpoint string) (string, error) {
	if endpoint == "" {
		return "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL such as http://host:port", endpoint)
	}
	svc := m.service(u.Hostname())
	if svc == nil {
		return endpoint, nil
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return "", fmt.Errorf("%q: give the service's port", endpoint)
	}
	if _, err := svc.Start(ctx); err != nil {
		return "", fmt.Errorf("start service %s: %w", u.Hostname(), err)
	}
	return svc.Endpoint(ctx, dagger.ServiceEndpointOpts{Port: port, Scheme: u.Scheme})
}

func (m *Amichain) service(name string) *dagger.Service {
	for i, n := range m.ServiceNames {
		if n == name {
			return m.Services[i]
		}
	}
	return nil
}
