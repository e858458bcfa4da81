package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	amis "github.com/amichain/amichain/core/ami"
	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/janitor"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/run"
)

// Plan is what a run would do: which images are up to date, reused or built, and why.
type Plan struct {
	// The plan as a table, one line per image, and a summary line.
	Table string
	// The upstream OS image the root images are built from.
	UpstreamAmi string
	// Every image of the plan, parents first.
	Images []*ImagePlan
	// The images that would be built.
	ToBuild []string
}

// ImagePlan is what a run would do with one image.
type ImagePlan struct {
	// The image's name in amichain.yaml.
	Name string
	// What the run would do: up to date, reuse or build.
	Action string
	// The AMI the image would have without a build (up to date or reuse), else empty.
	Ami string
	// Why the image would be built or reused, e.g. "ansible/roles/nginx/tasks/main.yml changed".
	Reasons []string
	// The image's content fingerprint; empty while its parent is to be built.
	Fingerprint string
}

// Result is what a run did: which images were built, reused or up to date.
type Result struct {
	// The result as a table, one line per image, and a summary line.
	Table string
	// Every image of the run, parents first.
	Images []*ImageResult
	// The images that were built.
	Built []string
}

// ImageResult is what a run did with one image.
type ImageResult struct {
	// The image's name in amichain.yaml.
	Name string
	// What happened: built, reuse, up to date, failed or skipped.
	Status string
	// The AMI children are built from, in the build region.
	Ami string
	// Every AMI id of the image, as REGION=AMI.
	Amis []string
	// The region the image is built in.
	Region string
	// The image's content fingerprint.
	Fingerprint string
	// The AMI the image was built from.
	ParentAmi string
	// Why the image was built or reused, or why it failed.
	Reasons []string
}

// Plan says which images are up to date, which would be reused and which built, and why.
//
// It builds nothing. Select table for the table, or images for one object per image.
// +cache="never"
func (m *Amichain) Plan(ctx context.Context) (*Plan, error) {
	return m.plan(ctx, "")
}

func (m *Amichain) plan(ctx context.Context, only string) (*Plan, error) {
	aws, err := m.aws(ctx)
	if err != nil {
		return nil, err
	}
	r, err := m.load(ctx, aws, "", false)
	if err != nil {
		return nil, err
	}
	p, err := r.Plan(ctx, only)
	if err != nil {
		return nil, err
	}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("some images cannot be built\n%s", p)
	}
	out := &Plan{Table: p.String(), UpstreamAmi: p.UpstreamAMI, ToBuild: p.Stale()}
	for _, s := range p.Steps {
		out.Images = append(out.Images, &ImagePlan{Name: s.Image.Name, Action: action(s.Status), Ami: s.AMI(),
			Reasons: s.Reasons, Fingerprint: s.Fingerprint.Sum})
	}
	return out, nil
}

func action(s plan.Status) string {
	if s == plan.Stale {
		return "build"
	}
	return string(s)
}

// BuildAll builds every image whose inputs changed, parents first and siblings in parallel.
//
// Each child starts as soon as its own parent is done, from the parent's new AMI. If an image
// fails, its descendants are skipped and the call fails with the table; its siblings build.
// +cache="never"
func (m *Amichain) BuildAll(ctx context.Context) (*Result, error) {
	return m.build(ctx, "")
}

func (m *Amichain) build(ctx context.Context, only string) (*Result, error) {
	aws, err := m.aws(ctx)
	if err != nil {
		return nil, err
	}
	runID := newRunID(time.Now())
	// What killed runs left behind goes first, so a cancelled build costs nothing for long.
	swept, err := janitor.Sweep(ctx, aws.ec2, m.Region, m.sweepOptions(aws, runID, false))
	if err != nil {
		return nil, err
	}
	report := ""
	if len(swept.Leftovers) > 0 {
		report = swept.String() + "\n"
	}
	r, err := m.load(ctx, aws, runID, true)
	if err != nil {
		return nil, err
	}
	sum, err := r.Build(ctx, only)
	if err != nil {
		if len(sum.Outcomes) == 0 {
			return nil, err // nothing was decided: the error says why
		}
		// The table carries every image's outcome and the failures' first lines; the details
		// are in the build log above.
		return nil, fmt.Errorf("some images failed\n%s%s", report, sum)
	}
	out := &Result{Table: report + sum.String()}
	for _, o := range sum.Outcomes {
		out.Images = append(out.Images, imageResult(o))
		if o.Status == build.Built {
			out.Built = append(out.Built, o.Image)
		}
	}
	return out, nil
}

func imageResult(o build.Outcome) *ImageResult {
	img := &ImageResult{Name: o.Image, Status: string(o.Status), Ami: o.AMI(), Region: o.Region,
		Fingerprint: o.Fingerprint, ParentAmi: o.ParentAMI, Reasons: o.Reasons}
	if o.Err != nil {
		img.Reasons = []string{o.Err.Error()}
	}
	for _, region := range slices.Sorted(maps.Keys(o.AMIs)) {
		img.Amis = append(img.Amis, region+"="+o.AMIs[region])
	}
	return img
}

// Sweep finds what killed runs left in the build region and removes it.
//
// Builder instances, and the key pairs and security groups Packer made for them, carry their
// run's id and an expiry in their tags; build-all sweeps before it builds.
// +cache="never"
func (m *Amichain) Sweep(
	ctx context.Context,
	// Only list what would be removed.
	// +optional
	dryRun bool,
) (string, error) {
	aws, err := m.aws(ctx)
	if err != nil {
		return "", err
	}
	rep, err := janitor.Sweep(ctx, aws.ec2, m.Region, m.sweepOptions(aws, newRunID(time.Now()), dryRun))
	if err != nil {
		return "", err
	}
	if err := rep.Err(); err != nil {
		return "", fmt.Errorf("%s%w", rep, err)
	}
	return rep.String(), nil
}

// sweepOptions: a builder is a dead run's once it expired, or once its run holds no build lease.
func (m *Amichain) sweepOptions(aws *awsAccess, runID string, dryRun bool) janitor.Options {
	return janitor.Options{Now: time.Now(), RunID: runID, DryRun: dryRun,
		Building: func(ctx context.Context, run, image, fingerprint string) (bool, error) {
			return aws.store.Holds(ctx, run, image, fingerprint, time.Now())
		}}
}

// Adopt records an existing AMI from its amichain tags, without building it.
//
// For an AMI whose record was lost or could not be saved after its build: Packer tags every
// AMI with its image, fingerprint, parent AMI and commit.
// +cache="never"
func (m *Amichain) Adopt(
	ctx context.Context,
	// The AMI id in the build region, e.g. ami-0123456789abcdef0.
	ami string,
) (string, error) {
	aws, err := m.aws(ctx)
	if err != nil {
		return "", err
	}
	r, err := m.load(ctx, aws, "", false)
	if err != nil {
		return "", err
	}
	rec, err := amis.Adopt(ctx, aws.ec2, m.Region, ami, r.Tree)
	if err != nil {
		return "", err
	}
	if err := aws.store.Save(ctx, rec); err != nil {
		return "", fmt.Errorf("record adopted %s: %w", ami, err)
	}
	return formatRecords([]record.Record{rec}), nil
}

// Ids prints the current record of every image: its AMI ids, fingerprint and origin.
// +cache="never"
func (m *Amichain) Ids(ctx context.Context) (string, error) {
	aws, err := m.aws(ctx)
	if err != nil {
		return "", err
	}
	recs, err := aws.store.List(ctx)
	if err != nil {
		return "", err
	}
	r, err := m.load(ctx, aws, "", false)
	if err != nil {
		return "", err
	}
	params, err := m.params(ctx, aws)
	if err != nil {
		return "", err
	}
	off, err := run.Publisher(r.Tree, params).Disagreements(ctx, recs)
	if err != nil {
		return "", err
	}
	return formatRecords(recs) + off, nil
}

func formatRecords(recs []record.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-22s %-14s %-20s %s\n", "IMAGE", "AMI", "FINGERPRINT", "BUILT", "COMMIT")
	for _, r := range recs {
		fmt.Fprintf(&b, "%-14s %-22s %-14s %-20s %s\n", r.Image, r.AMI(), short(r.Fingerprint, 12),
			r.BuiltAt.UTC().Format("2006-01-02 15:04:05"), short(r.Commit, 12))
		for _, region := range slices.Sorted(maps.Keys(r.AMIs)) {
			if region != r.Region {
				fmt.Fprintf(&b, "%-14s %-22s (%s)\n", "", r.AMIs[region], region)
			}
		}
	}
	return b.String()
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
