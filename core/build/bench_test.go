package build_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/s3test"
)

// genTree writes a repository with n images: image i is built from image (i-1)/fanout, so
// the tree has depth about log_fanout(n). Every playbook uses a shared role and one of its own.
func genTree(b *testing.B, n, fanout int) string {
	dir := b.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		assert.NilError(b, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(b, os.WriteFile(p, []byte(content), 0o644))
	}
	write("toolchain.env", "PACKER_VERSION=1.12.0\nPACKER_PLUGIN_AMAZON_VERSION=1.3.6\nPACKER_PLUGIN_ANSIBLE_VERSION=1.1.2\nANSIBLE_CORE_VERSION=2.14.18\n")
	write("packer/image.pkr.hcl", "# template\n")
	write("ansible/roles/shared/tasks/main.yml", "- name: shared\n  ansible.builtin.debug: {msg: shared}\n")
	var y strings.Builder
	y.WriteString("upstream:\n  ami: ami-0aaaaaaaaaaaa0001\nimages:\n")
	for i := range n {
		name := fmt.Sprintf("img-%04d", i)
		write("ansible/roles/"+name+"/tasks/main.yml", fmt.Sprintf("- name: %s\n  ansible.builtin.debug: {msg: %s}\n", name, name))
		write("ansible/"+name+".yml", fmt.Sprintf("- hosts: all\n  roles: [shared, %s]\n", name))
		fmt.Fprintf(&y, "  - name: %s\n    template: packer/image.pkr.hcl\n    playbook: ansible/%s.yml\n", name, name)
		if i > 0 {
			fmt.Fprintf(&y, "    parent: img-%04d\n", (i-1)/fanout)
		}
	}
	write("amichain.yaml", y.String())
	return dir
}

func benchPlanner(b *testing.B, dir string, store *record.Store) *plan.Planner {
	fsys := os.DirFS(dir)
	tr, err := tree.Load(fsys, tree.DefaultPath)
	assert.NilError(b, err)
	tools, err := toolchain.Load(fsys, toolchain.DefaultPath)
	assert.NilError(b, err)
	return &plan.Planner{Tree: tr, Hasher: fingerprint.NewHasher(fsys), Records: store, Tools: tools}
}

// BenchmarkPlan1000 plans a 1,000-image tree that is fully built: every image is fingerprinted
// (fresh hasher each time, as in a new run) and its record read from a real S3 server.
func BenchmarkPlan1000(b *testing.B) {
	dir := genTree(b, 1000, 4)
	srv := s3test.StartFake(b)
	store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket})
	p := benchPlanner(b, dir, store)
	ex := &build.Executor{Planner: p, Builder: &testBuilder{}, Records: store, Parallel: 16}
	pl, err := p.Plan(context.Background(), "ami-0aaaaaaaaaaaa0001", "")
	assert.NilError(b, err)
	_, err = ex.Run(context.Background(), pl)
	assert.NilError(b, err)
	b.ResetTimer()
	for b.Loop() {
		p := benchPlanner(b, dir, store)
		pl, err := p.Plan(context.Background(), "ami-0aaaaaaaaaaaa0001", "")
		assert.NilError(b, err)
		assert.Equal(b, len(pl.Stale()), 0)
	}
}

// BenchmarkSchedule builds a 40-image tree of depth 3 with a builder that sleeps a fixed
// time, and reports wall time / critical-path time (1.00 is a perfect scheduler) and the
// time per tree level spent outside builds (planning the child again, recording in S3),
// which is fixed: the longer the builds, the closer the ratio is to 1.
func BenchmarkSchedule(b *testing.B) {
	for _, sleep := range []time.Duration{200 * time.Millisecond, time.Second} {
		b.Run(sleep.String(), func(b *testing.B) { benchSchedule(b, sleep) })
	}
}

func benchSchedule(b *testing.B, sleep time.Duration) {
	dir := genTree(b, 40, 3) // depths 0..3: critical path is 4 builds
	var ratio, overhead float64
	for b.Loop() {
		b.StopTimer()
		srv := s3test.StartFake(b)
		store := record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket})
		p := benchPlanner(b, dir, store)
		pl, err := p.Plan(context.Background(), "ami-0aaaaaaaaaaaa0001", "")
		assert.NilError(b, err)
		ex := &build.Executor{Planner: p, Builder: &testBuilder{sleep: sleep}, Records: store, Parallel: 40}
		b.StartTimer()
		start := time.Now()
		_, err = ex.Run(context.Background(), pl)
		wall := time.Since(start)
		assert.NilError(b, err)
		ratio = wall.Seconds() / (4 * sleep).Seconds()
		overhead = float64((wall - 4*sleep).Milliseconds()) / 4
	}
	b.ReportMetric(ratio, "wall/critical")
	b.ReportMetric(overhead, "ms-overhead/level")
}
