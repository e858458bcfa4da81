package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/upstream"
)

// credentials turns the secrets given to the module into an AWS credentials provider; nil
// means the SDK's default chain (e.g. an instance role of the engine's host).
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
	return nil, nil
}

type staticToken string

func (t staticToken) GetIdentityToken() ([]byte, error) { return []byte(t), nil }

// stores returns the record store and the EC2 client, from module code.
func (m *Amichain) stores(ctx context.Context) (*record.Store, *ec2.Client, error) {
	creds, err := m.credentials(ctx)
	if err != nil {
		return nil, nil, err
	}
	s3Endpoint, err := m.reach(ctx, m.S3Endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("--s3-endpoint: %w", err)
	}
	s3c, err := record.NewClient(ctx, record.Options{Region: m.Region, Endpoint: s3Endpoint, Credentials: creds})
	if err != nil {
		return nil, nil, err
	}
	ec2Endpoint, err := m.reach(ctx, m.EC2Endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("--ec2-endpoint: %w", err)
	}
	ec2c, err := upstream.NewClient(ctx, m.Region, ec2Endpoint, creds)
	if err != nil {
		return nil, nil, err
	}
	return record.NewStore(s3c, record.Config{Bucket: m.Bucket, Prefix: m.Prefix}), ec2c, nil
}

// reach rewrites an endpoint whose host names a service given with with-service into the
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
