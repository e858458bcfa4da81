package ssmlocal_test

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/ssmlocal"
)

func client(srv *ssmlocal.Server, region string) *ssm.Client {
	return ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "ssmlocal-dummy", "")})
}

// TestRealClient drives the stand-in with the real SDK client: what it sends is what SSM gets.
func TestRealClient(t *testing.T) {
	srv, err := ssmlocal.Start(t.Context(), ssmlocal.Options{
		ImageExists: func(region, id string) bool { return id != "ami-00000000000000404" },
	})
	assert.NilError(t, err)
	defer srv.Close()
	east, west := client(srv, "us-east-1"), client(srv, "eu-west-1")
	put := func(c *ssm.Client, name, value string, overwrite bool, dataType string) (*ssm.PutParameterOutput, error) {
		return c.PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value),
			Type: types.ParameterTypeString, DataType: aws.String(dataType), Overwrite: aws.Bool(overwrite)})
	}
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return "no API error: " + err.Error()
	}

	out, err := put(east, "/amichain/web", "ami-0123456789abcdef0", false, "aws:ec2:image")
	assert.NilError(t, err)
	assert.Equal(t, out.Version, int64(1))
	out, err = put(east, "/amichain/web", "ami-0123456789abcdef1", true, "aws:ec2:image")
	assert.NilError(t, err)
	assert.Equal(t, out.Version, int64(2))

	got, err := east.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("/amichain/web")})
	assert.NilError(t, err)
	assert.Equal(t, aws.ToString(got.Parameter.Value), "ami-0123456789abcdef1")
	assert.Equal(t, aws.ToString(got.Parameter.DataType), "aws:ec2:image")
	assert.Equal(t, got.Parameter.Version, int64(2))
	assert.Equal(t, aws.ToString(got.Parameter.ARN), "arn:aws:ssm:us-east-1:123456789012:parameter/amichain/web")
	assert.Assert(t, !got.Parameter.LastModifiedDate.IsZero())

	// Regions are apart: the signature's scope says which.
	_, err = west.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("/amichain/web")})
	var nf *types.ParameterNotFound
	assert.Assert(t, errors.As(err, &nf), "got %v", err)
	many, err := east.GetParameters(t.Context(), &ssm.GetParametersInput{Names: []string{"/amichain/web", "/amichain/nope"}})
	assert.NilError(t, err)
	assert.Equal(t, len(many.Parameters), 1)
	assert.DeepEqual(t, many.InvalidParameters, []string{"/amichain/nope"})

	errs := []struct {
		name, param, value, dataType string
		overwrite                    bool
		code                         string
	}{
		{"exists without overwrite", "/amichain/web", "ami-0123456789abcdef2", "aws:ec2:image", false, "ParameterAlreadyExists"},
		{"not an AMI id", "/amichain/x", "web-1", "aws:ec2:image", true, "ValidationException"},
		{"unknown data type", "/amichain/x", "ami-0123456789abcdef2", "aws:ec2:nope", true, "ValidationException"},
		{"reserved name", "/aws/x", "ami-0123456789abcdef2", "text", true, "ValidationException"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := put(east, tc.param, tc.value, tc.overwrite, tc.dataType)
			assert.Equal(t, code(err), tc.code)
		})
	}

	// An AMI that does not exist: the call succeeds, the asynchronous validation drops it.
	_, err = put(east, "/amichain/web", "ami-00000000000000404", true, "aws:ec2:image")
	assert.NilError(t, err)
	p, _ := srv.Get("us-east-1", "/amichain/web")
	assert.Equal(t, p.Value, "ami-0123456789abcdef1")

	srv.FailNext("PutParameter", "TooManyUpdates", "slow down")
	_, err = east.PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String("/amichain/a"), Value: aws.String("v"), Type: types.ParameterTypeString},
		func(o *ssm.Options) { o.RetryMaxAttempts = 1 })
	assert.Equal(t, code(err), "TooManyUpdates")
	assert.Check(t, is.Contains(srv.Calls(), "GetParameter eu-west-1"))
}
