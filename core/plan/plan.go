// Package plan decides, without building anything, which images of the tree are up to date,
// which can reuse an AMI already built for the same inputs, and which must be built, and why.
package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
)

// Status is what a run will do with an image.
type Status string

const (
	// UpToDate: the current record was built from exactly these inputs.
	UpToDate Status = "up to date"
	// Reuse: an AMI was built from these inputs before (e.g. before a revert); it becomes current.
	Reuse Status = "reuse"
	// Stale: the image must be built.
	Stale Status = "stale"
	// Broken: the image cannot be built (a file of it is missing or unreadable), nor can its
	// descendants; the rest of the tree can.
	Broken Status = "broken"
)

// Records is the part of the record store the planner reads.
type Records interface {
	Current(ctx context.Context, image string) (*record.Record, error)
	ByFingerprint(ctx context.Context, image, fingerprint string) (*record.Record, error)
}

// Repairer is implemented by record stores that can rewrite what an interrupted save left
// disagreeing with a current record (its .txt, its index entry); *record.Store is one.
type Repairer interface {
	Repair(ctx context.Context, cur *record.Record) ([]string, error)
}

// Fingerprinter computes an image's inputs; *fingerprint.Hasher is the real one.
type Fingerprinter interface {
	Compute(img tree.Image, tools toolchain.Versions, parentAMI string) (fingerprint.Set, error)
}

// Step is the decision for one image.
type Step struct {
	Image  tree.Image
	Status Status
	// Reasons say why the image is stale or reused ("ansible/roles/nginx/tasks/main.yml changed").
	Reasons []string
	// ParentAMI is the AMI the image is (or will be) built from; empty while the parent is stale.
	ParentAMI string
	// Fingerprint is known once the parent AMI is known.
	Fingerprint fingerprint.Set
	// Current is the image's current record, if any.
	Current *record.Record
	// Match is the record whose AMI is used: Current when up to date, the index entry on reuse.
	Match *record.Record
	// Err says why a Broken image cannot be built; nil for the descendants of one.
	Err error
}

// AMI is the AMI id in the build region, when the step needs no build.
func (s Step) AMI() string {
	if s.Match == nil {
		return ""
	}
	return s.Match.AMI()
}

// Plan is a decision for every selected image, in tree order (parents first).
type Plan struct {
	UpstreamAMI string
	Steps       []Step
}

// Stale returns the names of the images that will be built.
func (p *Plan) Stale() []string {
	var out []string
	for _, s := range p.Steps {
		if s.Status == Stale {
			out = append(out, s.Image.Name)
		}
	}
	return out
}

// Planner holds what every decision needs.
type Planner struct {
	Tree    *tree.Tree
	Hasher  Fingerprinter
	Records Records
	Tools   toolchain.Versions
	// Force names images to rebuild even when up to date.
	Force map[string]bool
	// MaxAge, when set, makes an image older than it stale: base images need OS security
	// updates even when nothing in the repository changed.
	MaxAge time.Duration
	Now    func() time.Time
	// Live, when set, makes up to date and reuse require the recorded AMI to exist and be
	// available in every region its record names; nil trusts the records.
	Live Liveness
}

// Plan decides every image, or only the named one and its ancestors.
func (p *Planner) Plan(ctx context.Context, upstreamAMI, only string) (*Plan, error) {
	selected, err := p.selection(only)
	if err != nil {
		return nil, err
	}
	for name := range p.Force {
		if _, ok := p.Tree.Get(name); !ok {
			return nil, fmt.Errorf("--force %s: no such image in %s; the images are %s", name, tree.DefaultPath, strings.Join(p.Tree.Names(), ", "))
		}
	}
	current, repaired, err := p.currents(ctx, selected)
	if err != nil {
		return nil, err
	}
	known, err := p.checkAll(ctx, current)
	if err != nil {
		return nil, err
	}
	out := &Plan{UpstreamAMI: upstreamAMI}
	byName := map[string]Step{}
	for _, img := range p.Tree.Images {
		if !selected[img.Name] {
			continue
		}
		parentAMI, parentStale, parentBroken := upstreamAMI, false, false
		if img.Parent != "" {
			ps := byName[img.Parent]
			parentAMI, parentStale, parentBroken = ps.AMI(), ps.Status == Stale, ps.Status == Broken
		}
		var step Step
		if broken := p.Tree.Broken[img.Name]; broken != nil {
			step = Step{Image: img, Status: Broken, Err: broken, Current: current[img.Name], Reasons: []string{firstLine(broken.Error())}}
		} else if parentBroken {
			step = Step{Image: img, Status: Broken, Current: current[img.Name], Reasons: []string{fmt.Sprintf("parent %s is broken", img.Parent)}}
		} else if parentStale {
			step, err = p.parentStale(img, current[img.Name])
		} else {
			step, err = p.decide(ctx, img, parentAMI, current[img.Name], known)
		}
		if err != nil {
			return nil, err
		}
		step.Reasons = append(step.Reasons, repaired[img.Name]...)
		byName[img.Name] = step
		out.Steps = append(out.Steps, step)
	}
	return out, nil
}

// currents reads the selected images' records concurrently: with a thousand images, one
// round trip after another would dominate planning. It repairs what disagrees with them (see
// Repairer) and returns what it repaired, by image. The first error stops it: a bucket that
// refuses access says so once, not once per image.
func (p *Planner) currents(ctx context.Context, selected map[string]bool) (map[string]*record.Record, map[string][]string, error) {
	var mu sync.Mutex
	out, repaired := map[string]*record.Record{}, map[string][]string{}
	rp, _ := p.Records.(Repairer)
	pl := pool.New().WithErrors().WithFirstError().WithContext(ctx).WithMaxGoroutines(16)
	for name := range selected {
		pl.Go(func(ctx context.Context) error {
			rec, err := p.Records.Current(ctx, name)
			if err != nil {
				return fmt.Errorf("plan %s: %w", name, err)
			}
			var did []string
			if rp != nil {
				if did, err = rp.Repair(ctx, rec); err != nil {
					return fmt.Errorf("plan %s: %w", name, err)
				}
			}
			mu.Lock()
			out[name], repaired[name] = rec, did
			mu.Unlock()
			return nil
		})
	}
	return out, repaired, pl.Wait()
}

func (p *Planner) selection(only string) (map[string]bool, error) {
	sel := map[string]bool{}
	if only == "" {
		for _, n := range p.Tree.Names() {
			sel[n] = true
		}
		return sel, nil
	}
	if _, ok := p.Tree.Get(only); !ok {
		return nil, fmt.Errorf("unknown image %q (images: %v)", only, p.Tree.Names())
	}
	sel[only] = true
	for _, a := range p.Tree.Ancestors(only) {
		sel[a] = true
	}
	return sel, nil
}

// Step decides one image whose parent AMI is known. The executor calls it again once a stale
// parent is built, so that a child whose inputs were built before is reused, not rebuilt.
func (p *Planner) Step(ctx context.Context, img tree.Image, parentAMI string) (Step, error) {
	cur, err := p.Records.Current(ctx, img.Name)
	if err != nil {
		return Step{}, fmt.Errorf("plan %s: %w", img.Name, err)
	}
	return p.decide(ctx, img, parentAMI, cur, nil)
}

func (p *Planner) decide(ctx context.Context, img tree.Image, parentAMI string, cur *record.Record, known deadSet) (Step, error) {
	set, err := p.Hasher.Compute(img, p.Tools, parentAMI)
	if err != nil {
		return brokenStep(img, cur, err), nil
	}
	step := Step{Image: img, ParentAMI: parentAMI, Fingerprint: set, Current: cur, Status: Stale}
	if p.Force[img.Name] {
		step.Reasons = []string{"forced"}
		return step, nil
	}
	if cur != nil && cur.Fingerprint == set.Sum {
		if read, err := p.readsChanged(cur); err != nil || len(read) > 0 {
			step.Reasons = read
			return step, err
		}
		if old := p.tooOld(cur); old != "" {
			step.Reasons = []string{old}
			return step, nil
		}
		why, err := p.dead(ctx, cur, known)
		if err != nil {
			return Step{}, err
		}
		if why == "" {
			step.Status, step.Match = UpToDate, cur
			return step, nil
		}
		// Built from these inputs, but the AMI is gone: nothing in the index can be newer.
		step.Reasons = []string{why}
		return step, nil
	}
	var changed []string
	if cur == nil {
		changed = []string{"no record"}
	} else {
		changed = fingerprint.Diff(cur.Inputs, set.Inputs)
	}
	prev, err := p.Records.ByFingerprint(ctx, img.Name, set.Sum)
	if err != nil {
		return Step{}, fmt.Errorf("plan %s: %w", img.Name, err)
	}
	if read, rerr := p.readsChanged(prev); rerr != nil || len(read) > 0 {
		prev, err = nil, rerr
	}
	if err != nil {
		return Step{}, err
	}
	if prev != nil && prev.PrunedAt != nil {
		changed = append(changed, fmt.Sprintf("not reusing %s, built from these inputs before: pruned on %s",
			prev.AMI(), prev.PrunedAt.UTC().Format(time.RFC3339)))
		prev = nil
	}
	if prev != nil {
		why, err := p.dead(ctx, prev, nil)
		if err != nil {
			return Step{}, err
		}
		if why != "" {
			changed = append(changed, "not reusing "+prev.AMI()+", built from these inputs before: "+why)
		} else if old := p.tooOld(prev); old == "" {
			step.Status, step.Match = Reuse, prev
			step.Reasons = append(changed, fmt.Sprintf("reusing %s, built from these inputs on %s",
				prev.AMI(), prev.BuiltAt.UTC().Format(time.RFC3339)))
			return step, nil
		}
	}
	step.Reasons = changed
	return step, nil
}

// parentStale decides a child of an image that will be rebuilt: it is stale too. Its own
// changes are still worth naming, so diff its inputs as if the parent were unchanged.
func (p *Planner) parentStale(img tree.Image, cur *record.Record) (Step, error) {
	step := Step{Image: img, Current: cur, Status: Stale}
	// The parent AMI is not known yet: hash with the recorded one, which also finds inputs
	// that cannot be read before any build starts.
	parentAMI := ""
	if cur != nil {
		parentAMI = cur.ParentAMI
	}
	set, err := p.Hasher.Compute(img, p.Tools, parentAMI)
	if err != nil {
		return brokenStep(img, cur, err), nil
	}
	switch {
	case p.Force[img.Name]:
		step.Reasons = []string{"forced"}
	case cur == nil:
		step.Reasons = []string{"no record"}
	case set.Sum != cur.Fingerprint:
		step.Reasons = fingerprint.Diff(cur.Inputs, set.Inputs)
	}
	step.Reasons = append(step.Reasons, fmt.Sprintf("parent %s will be rebuilt", img.Parent))
	return step, nil
}

// brokenStep is an image whose inputs cannot be read, e.g. a playbook that is not valid YAML.
func brokenStep(img tree.Image, cur *record.Record, err error) Step {
	err = fmt.Errorf("fingerprint %s: %w", img.Name, err)
	return Step{Image: img, Status: Broken, Current: cur, Err: err, Reasons: []string{firstLine(err.Error())}}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Err joins why the broken images cannot be built; nil when none is.
func (p *Plan) Err() error {
	var errs []error
	for _, s := range p.Steps {
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	return errors.Join(errs...)
}

func (p *Planner) tooOld(r *record.Record) string {
	if p.MaxAge <= 0 {
		return ""
	}
	age := p.now().Sub(r.BuiltAt)
	if age <= p.MaxAge {
		return ""
	}
	return fmt.Sprintf("built %s ago, older than the maximum age %s", age.Round(time.Minute), p.MaxAge)
}

func (p *Planner) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Names returns the step names in order; handy for messages and tests.
func (p *Plan) Names() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Image.Name
	}
	return out
}

// String renders the plan as a table: what each image is, and why.
func (p *Plan) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tSTATUS\tAMI\tWHY")
	for _, s := range p.Steps {
		ami := s.AMI()
		if ami == "" {
			ami = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Image.Name, s.Status, ami, strings.Join(s.Reasons, "; "))
	}
	w.Flush()
	fmt.Fprintf(&b, "%d to build, upstream %s\n", len(p.Stale()), p.UpstreamAMI)
	return b.String()
}
