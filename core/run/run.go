// Package run wires one amichain run: a checkout of the repository, the record store, the
// EC2 API (for the upstream lookup) and a Builder, into a plan or a build. The Dagger module
// and the end-to-end tests are thin callers of it.
package run

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/ssmparam"
	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/core/upstream"
)

// Options configure a run.
type Options struct {
	// Source is the repository checkout: amichain.yaml, toolchain.env, packer/, ansible/.
	Source  fs.FS
	Records build.Records
	// EC2 resolves an upstream lookup; it may be nil when the upstream is a fixed AMI id.
	EC2 upstream.DescribeImagesAPI
	// Builder builds stale images; only Build needs it.
	Builder build.Builder
	// Force names images to rebuild even if up to date.
	Force []string
	// MaxAge makes images built longer ago than this stale (0: no limit).
	MaxAge   time.Duration
	Parallel int
	Commit   string
	Branch   string
	Now      func() time.Time
	// RunID names this run in its leases and in the tags of its builder instances.
	RunID string
	// Leases, when set, make runs that share the bucket build each fingerprint once.
	Leases build.Leases
	// LeaseTTL overrides how long a lease lasts unless renewed (build.Coordination).
	LeaseTTL time.Duration
	// Live, when set, makes up to date and reuse require the recorded AMIs to exist.
	Live plan.Liveness
	// Params, when set, publishes each image's current AMI to its SSM parameter (see
	// core/ssmparam) on every save, and plans repair a parameter that disagrees.
	Params ssmparam.Clients
}

// Run is a loaded repository, ready to plan or build.
type Run struct {
	Tree        *tree.Tree
	UpstreamAMI string
	planner     *plan.Planner
	opts        Options
}

// Load reads and checks the tree and the tool pins and resolves the upstream image.
func Load(ctx context.Context, opts Options) (*Run, error) {
	t, err := tree.Load(opts.Source, tree.DefaultPath)
	if err != nil {
		return nil, err
	}
	tools, err := toolchain.Load(opts.Source, toolchain.DefaultPath)
	if err != nil {
		return nil, err
	}
	if opts.EC2 == nil && t.Upstream.IsLookup() {
		return nil, fmt.Errorf("%s: the upstream image is a lookup, which needs the EC2 API: configure AWS access or pin `upstream.ami`", tree.DefaultPath)
	}
	up := t.Upstream.AMI
	if opts.EC2 != nil {
		if up, err = upstream.Resolve(ctx, opts.EC2, t.Upstream); err != nil {
			return nil, err
		}
	}
	if opts.Params != nil {
		opts.Records = &ssmparam.Store{Records: opts.Records, Publisher: Publisher(t, opts.Params)}
	}
	force := map[string]bool{}
	for _, f := range opts.Force {
		force[f] = true
	}
	return &Run{
		Tree:        t,
		UpstreamAMI: up,
		opts:        opts,
		planner: &plan.Planner{
			Tree: t, Hasher: fingerprint.NewHasher(opts.Source), Records: opts.Records,
			Tools: tools, Force: force, MaxAge: opts.MaxAge, Now: opts.Now, Live: opts.Live,
		},
	}, nil
}

// Publisher publishes the current AMIs of t's images under their ssm_parameter.
func Publisher(t *tree.Tree, clients ssmparam.Clients) *ssmparam.Publisher {
	return &ssmparam.Publisher{Clients: clients, Names: func(image string) string {
		img, ok := t.Get(image)
		if !ok {
			return "" // no longer in the tree: its parameter is left alone
		}
		return img.Parameter()
	}}
}

// Plan decides every image, or only the named one and its ancestors, building nothing.
func (r *Run) Plan(ctx context.Context, only string) (*plan.Plan, error) {
	return r.planner.Plan(ctx, r.UpstreamAMI, only)
}

// Build builds what is stale among every image, or the named one and its ancestors. The
// summary is complete even when the error is not nil.
func (r *Run) Build(ctx context.Context, only string) (build.Summary, error) {
	if r.opts.Builder == nil {
		return build.Summary{}, fmt.Errorf("run: no builder configured")
	}
	p, err := r.Plan(ctx, only)
	if err != nil {
		return build.Summary{}, err
	}
	ex := &build.Executor{
		Planner: r.planner, Builder: r.opts.Builder, Records: r.opts.Records,
		Parallel: r.opts.Parallel, Commit: r.opts.Commit, Branch: r.opts.Branch, Now: r.opts.Now,
		Coordination: build.Coordination{Leases: r.opts.Leases, RunID: r.opts.RunID, LeaseTTL: r.opts.LeaseTTL},
	}
	return ex.Run(ctx, p)
}
