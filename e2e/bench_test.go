package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/run"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/e2eenv"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/s3test"
	"github.com/amichain/amichain/internal/ssmlocal"
	"github.com/amichain/amichain/internal/testtool"
)

// registering "builds" an image by registering an AMI in the local EC2 API: enough to seed
// the records a real build-all would have left.
type registering struct{ ec2 *ec2local.Server }

func (r registering) Build(_ context.Context, req build.Request) (build.Result, error) {
	id := r.ec2.AddImage(ec2local.Image{Name: req.Image.Name + "-" + req.Fingerprint[:12], CreationDate: time.Now()})
	return build.Result{Region: e2eenv.Region, AMIs: map[string]string{e2eenv.Region: id}}, nil
}

// BenchmarkNoopPlan times `dagger call ... plan table` over this repository when every image
// is up to date, called as a CI job calls it (ci/dagger-call.sh: constructor flags only, no
// with-stand-ins). The S3 and EC2 stand-ins listen on the engine's bridge, which module code
// reaches without a service. Reports the median of b.N warm calls (run with -benchtime 5x).
func BenchmarkNoopPlan(b *testing.B) {
	dagger := testtool.Dagger(b)
	bridge := bridgeAddr(b)
	root := testtool.Root(b)
	ctx := context.Background()
	b.Setenv("AWS_ACCESS_KEY_ID", "AKIDBENCHEXAMPLE")
	b.Setenv("AWS_SECRET_ACCESS_KEY", e2eenv.Secret)

	s3 := s3test.StartFakeAt(b, bridge+":0")
	ec2, err := ec2local.Start(ctx, ec2local.Options{Addr: bridge + ":0", Region: e2eenv.Region, Images: []ec2local.Image{
		{ID: e2eenv.UpstreamAMI, Name: "debian-12-amd64-20261101-2", OwnerID: "136693071363", CreationDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ec2.Close() })
	ssm, err := ssmlocal.Start(ctx, ssmlocal.Options{Addr: bridge + ":0", Region: e2eenv.Region})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ssm.Close() })

	// The records a build-all of this checkout would have left.
	store := record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket, Prefix: "amichain"})
	ec2c, err := upstream.NewClient(ctx, e2eenv.Region, ec2.URL(), nil)
	if err != nil {
		b.Fatal(err)
	}
	r, err := run.Load(ctx, run.Options{Source: os.DirFS(root), Records: store, EC2: ec2c, Builder: registering{ec2}, Commit: "bench", Branch: "main"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Build(ctx, ""); err != nil {
		b.Fatal(err)
	}

	call := func() time.Duration {
		start := time.Now()
		cmd := exec.Command(dagger, "--progress=plain", "-m", root, "call",
			"--bucket", s3.Bucket, "--region", e2eenv.Region,
			"--records-endpoint", s3.Endpoint, "--compute-endpoint", ec2.URL(), "--params-endpoint", ssm.URL(),
			"--aws-access-key-id", "env://AWS_ACCESS_KEY_ID", "--aws-secret-access-key", "env://AWS_SECRET_ACCESS_KEY",
			"plan", "table")
		out, err := cmd.Output()
		took := time.Since(start)
		if err != nil || !strings.Contains(string(out), "0 to build") {
			b.Fatalf("plan: %v\n%s", err, out)
		}
		return took
	}
	call() // loads the module and fills the engine's cache: what every later CI job finds
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		took = append(took, call())
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "s/median-plan")
	b.Logf("warm no-op plans: %v", took)
}

// bridgeAddr is the engine's bridge address on this host (dagger0), where a server is reached
// by module code and containers without a service binding.
func bridgeAddr(b *testing.B) string {
	iface, err := net.InterfaceByName("dagger0")
	if err != nil {
		b.Skip("no dagger0 bridge: the engine does not run on this host's network")
	}
	addrs, err := iface.Addrs()
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
			return ip.IP.String()
		}
	}
	b.Skip("dagger0 has no IPv4 address")
	return ""
}
