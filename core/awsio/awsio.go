// Package awsio bounds every AWS call amichain makes (a timeout per request, retries with
// backoff) and says in plain words what a failed call means: bad credentials, an endpoint
// that is not an AWS API, one that does not answer.
package awsio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Defaults: a request that has not answered in 30 s is tried again, 5 attempts in all, with
// exponential backoff up to 20 s between them: at most about 3 minutes per call.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultAttempts = 5
	maxBackoff      = 20 * time.Second
)

// Limits bound each call; zero fields take the defaults.
type Limits struct {
	// Timeout bounds one HTTP request, from sending it to reading its answer.
	Timeout time.Duration
	// Attempts is how many times a failed or timed-out request is sent in all.
	Attempts int
}

// Config loads the AWS configuration of one region for a service client: creds, or the SDK's
// default chain when nil, with every request bounded by the default Limits.
func Config(ctx context.Context, region string, creds aws.CredentialsProvider) (aws.Config, error) {
	load := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if creds != nil {
		load = append(load, config.WithCredentialsProvider(creds))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration for region %s: %w", region, err)
	}
	Limits{}.Apply(&cfg)
	return cfg, nil
}

// Apply sets cfg's HTTP client and retryer from l.
func (l Limits) Apply(cfg *aws.Config) {
	timeout, attempts := l.Timeout, l.Attempts
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTimeout(timeout)
	cfg.APIOptions = append(cfg.APIOptions, rejectHTML)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = min(maxBackoff, timeout)
		})
	}
}

// ErrNotAWS is an answer that is a web page, not the API: a captive portal, a proxy's login
// page, a wrong URL. EC2 would otherwise read it as an empty, successful answer.
var ErrNotAWS = errors.New("the endpoint answered with an HTML page, not the AWS API")

func rejectHTML(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("amichainRejectHTML",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok &&
				strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/html") {
				return out, md, fmt.Errorf("%w (HTTP %d)", ErrNotAWS, resp.StatusCode)
			}
			return out, md, err
		}), middleware.After)
}

// Kind classifies a failed AWS call.
type Kind int

const (
	Other Kind = iota
	// Credentials: the keys or token are wrong, expired or unknown.
	Credentials
	// Denied: the credentials are fine but may not do this.
	Denied
	// NotAWS: the endpoint answered with something that is not an AWS API (an HTML page).
	NotAWS
	// Timeout: the endpoint accepted the connection but did not answer in time.
	Timeout
	// Unreachable: no connection could be made.
	Unreachable
	// ServerError: the service kept failing (5xx).
	ServerError
)

// Classify says what kind of failure err is.
func Classify(err error) Kind {
	if err == nil {
		return Other
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "InvalidAccessKeyId",
			"SignatureDoesNotMatch", "AuthFailure", "UnrecognizedClientException", "InvalidToken",
			"RequestExpired", "TokenRefreshRequired", "XAdminUserNotFound":
			return Credentials
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden":
			return Denied
		}
	}
	if errors.Is(err, ErrNotAWS) {
		return NotAWS
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == http.StatusForbidden:
			return Denied
		case code >= 500:
			return ServerError
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "Client.Timeout exceeded") {
		return Timeout
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return Unreachable
	}
	return Other
}

// Hint is what to do about err, "" when there is nothing better to say than err itself.
// service is "S3" or "EC2".
func Hint(err error, service string, l Limits) string {
	switch Classify(err) {
	case Credentials:
		return "the AWS credentials were refused (wrong, expired or revoked keys or session token): check the credentials, e.g. renew the session"
	case Denied:
		return "access denied: check that the AWS credentials' policy allows this " + service + " call"
	case NotAWS:
		return "the " + service + " endpoint answered with a web page, not the " + service + " API: check the endpoint URL (and any proxy in between)"
	case Timeout:
		within := ""
		if l.Timeout > 0 {
			within = " within " + l.Timeout.String() + " per attempt"
		}
		return "the " + service + " endpoint accepted the connection but did not answer" + within + ": check the endpoint and the network, then run again"
	case Unreachable:
		return "cannot reach the " + service + " endpoint: check the endpoint and the network, then run again"
	case ServerError:
		return "the " + service + " service keeps failing: run again later"
	}
	return ""
}

// Explain prefixes err with Hint when there is one.
func Explain(err error, service string) error {
	if h := Hint(err, service, Limits{}); h != "" {
		return fmt.Errorf("%s: %w", h, err)
	}
	return err
}
