// Package build runs a plan: it builds the stale images in dependency order, siblings in
// parallel, each child as soon as its own parent is done, and records every AMI it builds.
package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
)

// Records is the part of the record store a run reads and writes.
type Records interface {
	plan.Records
	Save(ctx context.Context, r record.Record) error
}

// Executor builds what a plan says is stale.
type Executor struct {
	Planner *plan.Planner
	Builder Builder
	Records Records
	// Parallel bounds concurrent builds; 0 means 4.
	Parallel int
	Commit   string
	Branch   string
	Now      func() time.Time
}

// Status is what happened to an image in a run.
type Status string

const (
	UpToDate Status = "up to date"
	Reused   Status = "reuse"
	Built    Status = "built"
	Failed   Status = "failed"
	Skipped  Status = "skipped"
)

// Outcome is what happened to one image.
type Outcome struct {
	Image       string
	Status      Status
	Region      string
	AMIs        map[string]string
	Fingerprint string
	ParentAMI   string
	Reasons     []string
	Err         error
	Duration    time.Duration
	// Notes are warnings of the build, e.g. a file Ansible read that the analysis missed.
	Notes []string
}

// AMI is the id in the build region.
func (o Outcome) AMI() string { return o.AMIs[o.Region] }

// Summary lists every image of the plan, in plan order.
type Summary struct {
	Outcomes []Outcome
}

// Count returns how many images ended with status s.
func (s Summary) Count(st Status) int {
	n := 0
	for _, o := range s.Outcomes {
		if o.Status == st {
			n++
		}
	}
	return n
}

// Err is non-nil when an image failed or was skipped.
func (s Summary) Err() error {
	var errs []error
	for _, o := range s.Outcomes {
		if o.Status == Failed {
			errs = append(errs, fmt.Errorf("%s: %w", o.Image, o.Err))
		}
	}
	if len(errs) == 0 && s.Count(Skipped) == 0 {
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%d skipped", s.Count(Skipped))
	}
	return errors.Join(errs...)
}

// String renders the summary as a table.
func (s Summary) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tRESULT\tAMI\tWHY")
	for _, o := range s.Outcomes {
		why := strings.Join(o.Reasons, "; ")
		if o.Err != nil && o.Status == Failed {
			why = firstLine(o.Err.Error())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", o.Image, o.Status, dash(o.AMI()), why)
	}
	w.Flush()
	writeNotes(&b, s.Outcomes)
	fmt.Fprintf(&b, "%d built, %d reuse, %d up to date, %d failed, %d skipped\n",
		s.Count(Built), s.Count(Reused), s.Count(UpToDate), s.Count(Failed), s.Count(Skipped))
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Run builds the plan. It returns the summary, and an error when any image failed or was
// skipped; a failed image stops its descendants, never its siblings.
func (e *Executor) Run(ctx context.Context, p *plan.Plan) (Summary, error) {
	parallel := e.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	slots := make(chan struct{}, parallel)
	done := map[string]chan struct{}{}
	outcomes := make([]Outcome, len(p.Steps))
	index := map[string]int{}
	for i, s := range p.Steps {
		done[s.Image.Name] = make(chan struct{})
		index[s.Image.Name] = i
	}
	var wg conc.WaitGroup
	for i, step := range p.Steps {
		wg.Go(func() {
			defer close(done[step.Image.Name])
			parentStatus, parentAMI := UpToDate, p.UpstreamAMI
			if pi, ok := index[step.Image.Parent]; ok {
				<-done[step.Image.Parent]
				parentStatus, parentAMI = outcomes[pi].Status, outcomes[pi].AMI()
			}
			outcomes[i] = e.one(ctx, step, parentStatus, parentAMI, slots)
		})
	}
	wg.Wait()
	sum := Summary{Outcomes: outcomes}
	return sum, sum.Err()
}

// one settles one image once its parent is settled.
func (e *Executor) one(ctx context.Context, step plan.Step, parentStatus Status, parentAMI string, slots chan struct{}) Outcome {
	out := Outcome{Image: step.Image.Name, Reasons: step.Reasons}
	if parentStatus == Failed || parentStatus == Skipped {
		out.Status = Skipped
		out.Reasons = []string{fmt.Sprintf("parent %s %s", step.Image.Parent, parentStatus)}
		return out
	}
	if step.Status == plan.Stale && step.Fingerprint.Sum == "" {
		// The parent was stale at planning time: decide again now that its AMI is known.
		again, err := e.Planner.Step(ctx, step.Image, parentAMI)
		if err != nil {
			return failed(out, err)
		}
		if again.Status == plan.Stale && !e.Planner.Force[step.Image.Name] {
			again.Reasons = step.Reasons
		}
		step = again
	}
	out.Fingerprint, out.ParentAMI = step.Fingerprint.Sum, step.ParentAMI
	switch step.Status {
	case plan.UpToDate:
		out.Status, out.Region, out.AMIs = UpToDate, step.Match.Region, step.Match.AMIs
		return out
	case plan.Reuse:
		if err := e.Records.Save(ctx, *step.Match); err != nil {
			return failed(out, fmt.Errorf("record reused AMI: %w", err))
		}
		out.Status, out.Region, out.AMIs, out.Reasons = Reused, step.Match.Region, step.Match.AMIs, step.Reasons
		return out
	}

	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return failed(out, ctx.Err())
	}
	defer func() { <-slots }()
	start := e.now()
	res, err := e.Builder.Build(ctx, Request{
		Image:       step.Image,
		ParentAMI:   step.ParentAMI,
		Fingerprint: step.Fingerprint.Sum,
		Commit:      e.Commit,
		Forced:      e.Planner.Force[step.Image.Name],
	})
	out.Duration = e.now().Sub(start)
	if err != nil {
		return failed(out, err)
	}
	if err := ctx.Err(); err != nil {
		// Cancelled after the build returned: do not record what the user stopped.
		return failed(out, err)
	}
	reads, notes := e.reads(step.Fingerprint.Inputs, res)
	out.Notes = notes
	rec := record.Record{
		Scheme:      record.Scheme,
		Image:       step.Image.Name,
		Fingerprint: step.Fingerprint.Sum,
		Region:      res.Region,
		AMIs:        res.AMIs,
		Inputs:      step.Fingerprint.Inputs,
		Parent:      step.Image.Parent,
		ParentAMI:   step.ParentAMI,
		Commit:      e.Commit,
		Branch:      e.Branch,
		BuiltAt:     e.now().UTC(),
		Tools:       e.Planner.Tools,
		Reads:       reads,
	}
	if err := e.Records.Save(ctx, rec); err != nil {
		return failed(out, fmt.Errorf("built %s but could not record it: %w", res.AMIs[res.Region], err))
	}
	out.Status, out.Region, out.AMIs = Built, res.Region, res.AMIs
	return out
}

func failed(out Outcome, err error) Outcome {
	out.Status, out.Err = Failed, err
	return out
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}
