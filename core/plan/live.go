package plan

import (
	"context"
	"fmt"

	"github.com/amichain/amichain/core/record"
)

// Liveness says which recorded AMIs can no longer be used; *ami.Checker is the real one.
type Liveness interface {
	// Check returns, per record, why it cannot be used ("" when every AMI it names exists and
	// is available in its region).
	Check(ctx context.Context, recs []*record.Record) ([]string, error)
}

// deadSet holds Check's answers for the records read at planning time.
type deadSet map[*record.Record]string

// dead returns why r cannot be used, asking EC2 unless the batch at planning time did.
func (p *Planner) dead(ctx context.Context, r *record.Record, known deadSet) (string, error) {
	if p.Live == nil || r == nil {
		return "", nil
	}
	if why, ok := known[r]; ok {
		return why, nil
	}
	why, err := p.Live.Check(ctx, []*record.Record{r})
	if err != nil {
		return "", fmt.Errorf("plan %s: %w", r.Image, err)
	}
	return why[0], nil
}

// checkAll asks about every current record at once: one DescribeImages per region and batch.
func (p *Planner) checkAll(ctx context.Context, current map[string]*record.Record) (deadSet, error) {
	out := deadSet{}
	if p.Live == nil {
		return out, nil
	}
	var recs []*record.Record
	for _, r := range current {
		if r != nil {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return out, nil
	}
	why, err := p.Live.Check(ctx, recs)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	for i, r := range recs {
		out[r] = why[i]
	}
	return out, nil
}
