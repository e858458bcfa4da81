package build_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

// isSavePut matches the writes of a save: not the lease's.
func isSavePut(r *http.Request) bool {
	return r.Method == http.MethodPut && !strings.Contains(r.URL.Path, "/leases/")
}

func getText(t *testing.T, srv *s3test.Server, key string) string {
	t.Helper()
	out, err := srv.Client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &srv.Bucket, Key: aws.String(key)})
	if err != nil {
		return ""
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	assert.NilError(t, err)
	return string(data)
}

// TestInterruptedSaveIsRepairedByTheNextRun kills (or fails) a save at each of its PUTs: index
// entry, current record, .txt. The next run leaves the three agreeing, and says what it fixed.
func TestInterruptedSaveIsRepairedByTheNextRun(t *testing.T) {
	const role = "ansible/roles/nginx/templates/app.conf.j2"
	for _, srv := range servers() {
		t.Run(srv.name, func(t *testing.T) {
			s3srv := srv.start(t)
			proxy := s3test.StartProxy(t, s3srv.Endpoint)
			ec2 := startEC2(t)
			for _, abort := range []bool{false, true} {
				for put := 1; put <= 3; put++ {
					t.Run(fmt.Sprintf("abort=%v/put %d", abort, put), func(t *testing.T) {
						prefix := fmt.Sprintf("p%v%d", abort, put)
						direct := record.NewStore(s3srv.Client, record.Config{Bucket: s3srv.Bucket, Prefix: prefix})
						faulty := record.NewStore(s3srv.ClientAt(proxy.URL), record.Config{Bucket: s3srv.Bucket, Prefix: prefix})
						dir := repotest.Copy(t)
						b := &amiBuilder{ec2: ec2}
						runWith := func(store *record.Store) (build.Summary, error) {
							ex := coordinatedRun(t, dir, store, b, "run")
							if store == faulty {
								ex.SaveRetry = 200 * time.Millisecond
							}
							p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "")
							assert.NilError(t, err)
							return ex.Run(t.Context(), p)
						}
						_, err := runWith(direct)
						assert.NilError(t, err)
						oldWeb := getText(t, s3srv, prefix+"/web.txt")

						repotest.Append(t, dir, role, "# edited\n")
						proxy.Inject(&s3test.Fault{Match: isSavePut, After: put, Abort: abort})
						sum, err := runWith(faulty)
						proxy.Inject(nil)
						assert.ErrorContains(t, err, "could not record it")
						assert.Equal(t, outcome(sum, "web").Status, build.Failed)

						sum, err = runWith(direct)
						assert.NilError(t, err)
						cur, err := direct.Current(t.Context(), "web")
						assert.NilError(t, err)
						ix, err := direct.ByFingerprint(t.Context(), "web", cur.Fingerprint)
						assert.NilError(t, err)
						assert.Equal(t, getText(t, s3srv, prefix+"/web.txt"), cur.AMI()+"\n")
						assert.Equal(t, ix.AMI(), cur.AMI())
						assert.Equal(t, outcome(sum, "web").AMI(), cur.AMI())
						if put == 3 { // record written, .txt not: the next run repairs it and says so
							assert.Equal(t, outcome(sum, "web").Status, build.UpToDate)
							why := strings.Join(outcome(sum, "web").Reasons, "; ")
							assert.Assert(t, strings.Contains(why, fmt.Sprintf("repaired s3://%s/%s/web.txt (it said %q)", s3srv.Bucket, prefix, strings.TrimSpace(oldWeb))), why)
						}
					})
				}
			}
		})
	}
}

func TestDeletedIndexEntryIsRepaired(t *testing.T) {
	srv := s3test.StartFake(t)
	store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
	ex := coordinatedRun(t, repotest.Copy(t), store, &amiBuilder{ec2: startEC2(t)}, "run")
	p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "base")
	assert.NilError(t, err)
	_, err = ex.Run(t.Context(), p)
	assert.NilError(t, err)
	cur, err := store.Current(t.Context(), "base")
	assert.NilError(t, err)
	_, err = srv.Client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &srv.Bucket,
		Key: aws.String("amichain/index/base/" + cur.Fingerprint + ".json")})
	assert.NilError(t, err)

	p, err = ex.Planner.Plan(t.Context(), upstreamAMI, "base")
	assert.NilError(t, err)
	assert.DeepEqual(t, p.Steps[0].Reasons, []string{"repaired the index entry of base (it was missing): now " + cur.AMI() + ", as the record"})
	ix, err := store.ByFingerprint(t.Context(), "base", cur.Fingerprint)
	assert.NilError(t, err)
	assert.Equal(t, ix.AMI(), cur.AMI())
}
