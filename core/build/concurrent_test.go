package build_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

type server struct {
	name  string
	start func(testing.TB) *s3test.Server
}

func servers() []server {
	return []server{{"gofakes3", s3test.StartFake}, {"versitygw", s3test.StartVersitygw}}
}

// amiBuilder "builds" by registering an AMI in the local EC2 API, tagged as Packer tags it,
// so that a test can check every AMI made is named by a record.
type amiBuilder struct {
	ec2   *ec2local.Server
	sleep time.Duration

	mu    sync.Mutex
	built []string // image names, one per build
	amis  []string
}

func (b *amiBuilder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	select {
	case <-time.After(b.sleep):
	case <-ctx.Done():
		return build.Result{}, ctx.Err()
	}
	id := b.ec2.AddImage(ec2local.Image{
		SourceImage: req.ParentAMI,
		Name:        fmt.Sprintf("%s-%s-%d", req.Image.Name, req.Fingerprint[:12], time.Now().UnixNano()),
		Tags: map[string]string{
			"amichain:image": req.Image.Name, "amichain:fingerprint": req.Fingerprint,
			"amichain:parent-ami": req.ParentAMI, "amichain:commit": req.Commit,
		},
	})
	b.mu.Lock()
	b.built = append(b.built, req.Image.Name)
	b.amis = append(b.amis, id)
	b.mu.Unlock()
	return build.Result{Region: "us-east-1", AMIs: map[string]string{"us-east-1": id}}, nil
}

func startEC2(t testing.TB) *ec2local.Server {
	t.Helper()
	srv, err := ec2local.Start(context.Background(), ec2local.Options{Images: []ec2local.Image{{ID: upstreamAMI, Name: "debian-12"}}})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// coordinatedRun is one runner's executor over a shared bucket.
func coordinatedRun(t testing.TB, dir string, store *record.Store, b build.Builder, runID string) *build.Executor {
	fsys := os.DirFS(dir)
	tr, err := tree.Load(fsys, tree.DefaultPath)
	assert.NilError(t, err)
	tools, err := toolchain.Load(fsys, toolchain.DefaultPath)
	assert.NilError(t, err)
	p := &plan.Planner{Tree: tr, Hasher: fingerprint.NewHasher(fsys), Records: store, Tools: tools}
	return &build.Executor{Planner: p, Builder: b, Records: store, Parallel: 4, Commit: "abc123",
		Coordination: build.Coordination{Leases: store, RunID: runID, LeaseTTL: 3 * time.Second,
			PollInterval: 20 * time.Millisecond, SaveRetry: 5 * time.Second}}
}

// TestConcurrentRunsBuildEachFingerprintOnce runs 2 and 4 executors at once on one bucket, on
// a first run (every image stale) and after an edit that makes web and base's children stale.
func TestConcurrentRunsBuildEachFingerprintOnce(t *testing.T) {
	trials := 20
	if testing.Short() {
		trials = 5
	}
	for _, srv := range servers() {
		for _, runners := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/%d runners", srv.name, runners), func(t *testing.T) {
				s3 := srv.start(t)
				ec2 := startEC2(t)
				dir := repotest.Copy(t)
				var builds, stale, unnamed, lost, wrongParent int
				for trial := range trials {
					store := record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket, Prefix: fmt.Sprintf("t%d", trial)})
					b := &amiBuilder{ec2: ec2, sleep: 30 * time.Millisecond}
					for round := range 2 {
						if round == 1 {
							repotest.Append(t, dir, "ansible/roles/nginx/templates/app.conf.j2", "# edited\n")
						}
						p, err := coordinatedRun(t, dir, store, b, "plan").Planner.Plan(t.Context(), upstreamAMI, "")
						assert.NilError(t, err)
						stale += len(p.Stale())
						var wg sync.WaitGroup
						errs := make([]error, runners)
						for r := range runners {
							wg.Go(func() {
								ex := coordinatedRun(t, dir, store, b, fmt.Sprintf("run-%d-%d", trial, r))
								pl, err := ex.Planner.Plan(t.Context(), upstreamAMI, "")
								if err == nil {
									_, err = ex.Run(t.Context(), pl)
								}
								errs[r] = err
							})
						}
						wg.Wait()
						for _, err := range errs {
							assert.NilError(t, err)
						}
					}
					builds += len(b.built)
					u, l, w := audit(t, s3, store, fmt.Sprintf("t%d", trial), b.amis)
					unnamed, lost, wrongParent = unnamed+u, lost+l, wrongParent+w
				}
				t.Logf("%s, %d runners, %d trials: %d builds for %d stale images, %d unnamed AMIs, %d lost records, %d children not from the parent's current AMI",
					srv.name, runners, trials, builds, stale, unnamed, lost, wrongParent)
				assert.Equal(t, builds, stale)
				assert.Equal(t, unnamed, 0)
				assert.Equal(t, lost, 0)
				assert.Equal(t, wrongParent, 0)
			})
		}
	}
}

// audit counts AMIs no record names, images without a current record, and current records
// whose parent AMI is not the parent's current AMI.
func audit(t testing.TB, s3 *s3test.Server, store *record.Store, prefix string, amis []string) (unnamed, lost, wrongParent int) {
	recs, err := store.List(context.Background())
	assert.NilError(t, err)
	named := map[string]bool{}
	current := map[string]record.Record{}
	for _, r := range recs {
		current[r.Image] = r
		named[r.AMI()] = true
	}
	for _, key := range s3.Keys(t, prefix+"/index/") {
		parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(key, prefix+"/index/"), ".json"), "/")
		ix, err := store.ByFingerprint(context.Background(), parts[0], parts[1])
		assert.NilError(t, err)
		named[ix.AMI()] = true
	}
	for _, name := range all {
		if _, ok := current[name]; !ok {
			lost++
		}
	}
	for _, r := range current {
		if p, ok := current[r.Parent]; ok && p.AMI() != r.ParentAMI {
			wrongParent++
		}
	}
	for _, id := range amis {
		if !named[id] {
			unnamed++
		}
	}
	return unnamed, lost, wrongParent
}
