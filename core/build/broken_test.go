package build_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

// TestBrokenImageFailsAloneWithItsDescendants: an image whose playbook or template cannot be
// read fails with its descendants; its siblings plan and build.
func TestBrokenImageFailsAloneWithItsDescendants(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		failed string
		errMsg string
		built  []string
	}{
		{
			name: "playbook not valid YAML",
			break_: func(t *testing.T, dir string) {
				repotest.Append(t, dir, "ansible/worker.yml", "- hosts: [unclosed\n")
			},
			failed: "worker", errMsg: "ansible/worker.yml",
			built: []string{"base", "web", "build-agent", "deploy-agent"},
		},
		{
			name: "template missing",
			break_: func(t *testing.T, dir string) {
				y, err := os.ReadFile(filepath.Join(dir, "amichain.yaml"))
				assert.NilError(t, err)
				y = []byte(strings.Replace(string(y), "playbook: ansible/web.yml", "playbook: ansible/web.yml\n    inputs: [files/gone.conf]", 1))
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "amichain.yaml"), y, 0o644))
			},
			failed: "web", errMsg: `image "web": input files/gone.conf`,
			built: []string{"base", "worker", "build-agent", "deploy-agent"},
		},
		{
			name:   "root broken: every descendant skipped",
			break_: func(t *testing.T, dir string) { assert.NilError(t, os.Remove(filepath.Join(dir, "ansible/base.yml"))) },
			failed: "base", errMsg: `image "base": playbook ansible/base.yml`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := s3test.StartFake(t)
			store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket, Prefix: "amichain"})
			dir := repotest.Copy(t)
			tc.break_(t, dir)
			b := &amiBuilder{ec2: startEC2(t)}
			ex := coordinatedRun(t, dir, store, b, "run")
			p, err := ex.Planner.Plan(t.Context(), upstreamAMI, "")
			assert.NilError(t, err)
			assert.Equal(t, step(p, tc.failed).Status, plan.Broken)
			assert.ErrorContains(t, p.Err(), tc.errMsg)
			assert.Check(t, is.Regexp(`(?m)^`+tc.failed+` +broken +- +`, p.String()))
			sum, err := ex.Run(t.Context(), p)
			assert.ErrorContains(t, err, tc.errMsg)
			assert.Equal(t, outcome(sum, tc.failed).Status, build.Failed)
			slices.Sort(b.built)
			want := slices.Sorted(slices.Values(tc.built))
			assert.DeepEqual(t, b.built, want, cmpopts.EquateEmpty())
			for _, o := range sum.Outcomes {
				if o.Image != tc.failed && !slices.Contains(tc.built, o.Image) {
					assert.Equal(t, o.Status, build.Skipped, o.Image)
				}
			}
		})
	}
}
