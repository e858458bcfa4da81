// Package ssmparam publishes each image's current AMI to SSM Parameter Store, data type
// aws:ec2:image, in every region the AMI exists in, so that launch templates read it with
// resolve:ssm:/amichain/web. It wraps the record store: a save publishes, a repair finds and
// rewrites a parameter that disagrees with the current record (a publish that failed).
package ssmparam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/core/record"
)

// DataType makes SSM check the value is an AMI of the region, and lets EC2 resolve it.
const DataType = "aws:ec2:image"

// API is the part of the SSM client used; *ssm.Client is the real one.
type API interface {
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	GetParameters(ctx context.Context, in *ssm.GetParametersInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
}

// Clients returns the SSM client of a region.
type Clients func(ctx context.Context, region string) (API, error)

// NewClient returns an SSM client for region with awsio's timeouts and retries; endpoint ""
// is AWS's.
func NewClient(ctx context.Context, region, endpoint string, creds aws.CredentialsProvider) (*ssm.Client, error) {
	cfg, err := awsio.Config(ctx, region, creds)
	if err != nil {
		return nil, err
	}
	return ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// Regional returns Clients that make one client per region, on first use.
func Regional(endpoint string, creds aws.CredentialsProvider) Clients {
	var mu sync.Mutex
	byRegion := map[string]API{}
	return func(ctx context.Context, region string) (API, error) {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := byRegion[region]; ok {
			return c, nil
		}
		c, err := NewClient(ctx, region, endpoint, creds)
		if err != nil {
			return nil, err
		}
		byRegion[region] = c
		return c, nil
	}
}

// Publisher writes and checks the parameters of records.
type Publisher struct {
	Clients Clients
	// Names gives the parameter of an image; "" publishes none (the image is not in the
	// tree, or its ssm_parameter is "").
	Names func(image string) string
}

// State is one parameter in one region, against the record.
type State struct {
	Region, Name string
	// Want is the record's AMI in Region; Have the parameter's value, "" when it is missing.
	Want, Have string
}

// OK reports whether the parameter names the record's AMI.
func (s State) OK() bool { return s.Want == s.Have }

func (s State) String() string {
	have := "missing"
	if s.Have != "" {
		have = "says " + s.Have
	}
	return fmt.Sprintf("SSM parameter %s in %s %s, the record %s", s.Name, s.Region, have, s.Want)
}

// Publish writes r's AMI of every region into its image's parameter there.
func (p *Publisher) Publish(ctx context.Context, r *record.Record) error {
	name := p.Names(r.Image)
	if name == "" {
		return nil
	}
	var errs []error
	for _, region := range slices.Sorted(maps.Keys(r.AMIs)) {
		if err := p.put(ctx, region, name, r.AMIs[region]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Publisher) put(ctx context.Context, region, name, ami string) error {
	c, err := p.Clients(ctx, region)
	if err != nil {
		return fmt.Errorf("SSM client for %s: %w", region, err)
	}
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(ami), Type: types.ParameterTypeString,
		DataType: aws.String(DataType), Overwrite: aws.Bool(true),
		Description: aws.String("The current AMI of this amichain image; written by amichain, do not edit"),
	})
	if err != nil {
		return fmt.Errorf("publish %s = %s in %s: %w (plan and build-all publish it again)", name, ami, region, awsio.Explain(err, "SSM"))
	}
	return nil
}

// Check reads r's parameter in every region of r.
func (p *Publisher) Check(ctx context.Context, r *record.Record) ([]State, error) {
	name := p.Names(r.Image)
	if name == "" {
		return nil, nil
	}
	var out []State
	for _, region := range slices.Sorted(maps.Keys(r.AMIs)) {
		c, err := p.Clients(ctx, region)
		if err != nil {
			return nil, fmt.Errorf("SSM client for %s: %w", region, err)
		}
		got, err := c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{name}})
		if err != nil {
			return nil, fmt.Errorf("read SSM parameter %s in %s: %w", name, region, awsio.Explain(err, "SSM"))
		}
		st := State{Region: region, Name: name, Want: r.AMIs[region]}
		for _, prm := range got.Parameters {
			if aws.ToString(prm.Name) == name {
				st.Have = aws.ToString(prm.Value)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Records is the record store wrapped: *record.Store.
type Records interface {
	Current(ctx context.Context, image string) (*record.Record, error)
	ByFingerprint(ctx context.Context, image, fingerprint string) (*record.Record, error)
	Save(ctx context.Context, r record.Record) error
}

// Store is a record store whose saves publish and whose repairs include the parameters.
type Store struct {
	Records
	Publisher *Publisher
}

// Save saves r, then publishes what is current: another run may have replaced r meanwhile,
// and the parameter must follow the record, as the .txt does. A failed publish fails the
// save (saveBuilt retries it); the next plan finds and repairs what is left.
func (s *Store) Save(ctx context.Context, r record.Record) error {
	if err := s.Records.Save(ctx, r); err != nil {
		return err
	}
	cur, err := s.Records.Current(ctx, r.Image)
	if err != nil {
		return err
	}
	if cur == nil {
		cur = &r
	}
	return s.Publisher.Publish(ctx, cur)
}

// Repair repairs what the wrapped store repairs, then every parameter of cur that disagrees.
func (s *Store) Repair(ctx context.Context, cur *record.Record) ([]string, error) {
	var did []string
	if rp, ok := s.Records.(interface {
		Repair(context.Context, *record.Record) ([]string, error)
	}); ok {
		var err error
		if did, err = rp.Repair(ctx, cur); err != nil {
			return nil, err
		}
	}
	if cur == nil {
		return did, nil
	}
	states, err := s.Publisher.Check(ctx, cur)
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		if st.OK() {
			continue
		}
		if err := s.Publisher.put(ctx, st.Region, st.Name, st.Want); err != nil {
			return nil, err
		}
		was := "it was missing"
		if st.Have != "" {
			was = "it said " + st.Have
		}
		did = append(did, fmt.Sprintf("repaired SSM parameter %s in %s (%s): now %s, as the record", st.Name, st.Region, was, st.Want))
	}
	return did, nil
}

// Disagreements lists, one per line, the parameters of recs that disagree with them.
func (p *Publisher) Disagreements(ctx context.Context, recs []record.Record) (string, error) {
	var b strings.Builder
	for i := range recs {
		states, err := p.Check(ctx, &recs[i])
		if err != nil {
			return "", err
		}
		for _, st := range states {
			if !st.OK() {
				fmt.Fprintf(&b, "%s: %s (plan or build-all repairs it)\n", recs[i].Image, st)
			}
		}
	}
	return b.String(), nil
}
