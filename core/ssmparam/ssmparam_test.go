package ssmparam_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/ssmparam"
	"github.com/amichain/amichain/internal/s3test"
	"github.com/amichain/amichain/internal/ssmlocal"
)

// clients reach the stand-in with the real SDK client, signed for each region.
func clients(srv *ssmlocal.Server) ssmparam.Clients {
	return func(_ context.Context, region string) (ssmparam.API, error) {
		return ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(srv.URL()), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "ssm-test-dummy", "")}), nil
	}
}

func rec(image string, amis map[string]string, at time.Time) record.Record {
	return record.Record{Scheme: record.Scheme, Image: image, Fingerprint: "fp-" + image, Region: "us-east-1", AMIs: amis,
		Inputs: []fingerprint.Input{{Name: "file:x", Digest: "1"}}, ParentAMI: "ami-0000000000000deb1", BuiltAt: at}
}

func TestSaveAndRepair(t *testing.T) {
	names := func(image string) string {
		if image == "unpublished" {
			return ""
		}
		return "/amichain/" + image
	}
	amis := map[string]string{"us-east-1": "ami-0000000000000e001", "eu-west-1": "ami-0000000000000e002"}
	tests := []struct {
		name string
		// before runs before the save; the save's error must contain saveErr.
		before   func(srv *ssmlocal.Server)
		saveErr  string
		after    func(srv *ssmlocal.Server)
		repaired []string
	}{
		{name: "save publishes in every region"},
		{name: "a failed publish fails the save and is repaired",
			before:   func(srv *ssmlocal.Server) { srv.FailNext("PutParameter", "AccessDeniedException", "not allowed") },
			saveErr:  "publish /amichain/web = ami-0000000000000e002 in eu-west-1",
			repaired: []string{"repaired SSM parameter /amichain/web in eu-west-1 (it was missing): now ami-0000000000000e002, as the record"}},
		{name: "a parameter changed by hand is repaired",
			after: func(srv *ssmlocal.Server) {
				srv.Set("us-east-1", ssmlocal.Parameter{Name: "/amichain/web", Type: "String", DataType: ssmparam.DataType, Value: "ami-0000000000000bad0"})
			},
			repaired: []string{"repaired SSM parameter /amichain/web in us-east-1 (it said ami-0000000000000bad0): now ami-0000000000000e001, as the record"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := ssmlocal.Start(t.Context(), ssmlocal.Options{})
			assert.NilError(t, err)
			defer srv.Close()
			s3 := s3test.StartFake(t)
			pub := &ssmparam.Publisher{Clients: clients(srv), Names: names}
			store := &ssmparam.Store{Records: record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket}), Publisher: pub}
			r := rec("web", amis, time.Now().UTC())
			if tc.before != nil {
				tc.before(srv)
			}
			err = store.Save(t.Context(), r)
			if tc.saveErr != "" {
				assert.ErrorContains(t, err, tc.saveErr)
				assert.ErrorContains(t, err, "AccessDenied")
			} else {
				assert.NilError(t, err)
			}
			if tc.after != nil {
				tc.after(srv)
			}
			cur, err := store.Current(t.Context(), "web")
			assert.NilError(t, err)
			listed, err := pub.Disagreements(t.Context(), []record.Record{*cur})
			assert.NilError(t, err)
			assert.Equal(t, listed == "", len(tc.repaired) == 0, "disagreements: %q", listed)

			did, err := store.Repair(t.Context(), cur)
			assert.NilError(t, err)
			assert.DeepEqual(t, did, tc.repaired)
			for region, ami := range amis {
				p, ok := srv.Get(region, "/amichain/web")
				assert.Assert(t, ok, region)
				assert.Equal(t, p.Value, ami, region)
				assert.Equal(t, p.DataType, ssmparam.DataType)
			}
			again, err := store.Repair(t.Context(), cur)
			assert.NilError(t, err)
			assert.Check(t, is.Len(again, 0))
		})
	}

	t.Run("an image without a parameter publishes nothing", func(t *testing.T) {
		srv, err := ssmlocal.Start(t.Context(), ssmlocal.Options{})
		assert.NilError(t, err)
		defer srv.Close()
		s3 := s3test.StartFake(t)
		store := &ssmparam.Store{Records: record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket}),
			Publisher: &ssmparam.Publisher{Clients: clients(srv), Names: names}}
		r := rec("unpublished", amis, time.Now().UTC())
		assert.NilError(t, store.Save(t.Context(), r))
		_, err = store.Repair(t.Context(), &r)
		assert.NilError(t, err)
		assert.Check(t, is.Len(srv.Calls(), 0))
	})
}
