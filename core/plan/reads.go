package plan

import (
	"fmt"

	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/record"
)

// ReadChecker is a Fingerprinter that can also tell whether what a build was seen to read
// has changed since (*fingerprint.Hasher): the safety net under the static analysis.
type ReadChecker interface {
	ReadsChanged(recorded []fingerprint.Input) ([]string, error)
}

// readsChanged names what r's build read that differs now ("ansible/x.j2 changed (read by
// the build of ami-1)"); nil when nothing did, r recorded no reads, or the fingerprinter
// cannot tell.
func (p *Planner) readsChanged(r *record.Record) ([]string, error) {
	rc, ok := p.Hasher.(ReadChecker)
	if !ok || r == nil || len(r.Reads) == 0 {
		return nil, nil
	}
	changed, err := rc.ReadsChanged(r.Reads)
	if err != nil {
		return nil, fmt.Errorf("plan %s: what the build of %s read: %w", r.Image, r.AMI(), err)
	}
	for i, c := range changed {
		changed[i] = fmt.Sprintf("%s (read by the build of %s)", c, r.AMI())
	}
	return changed, nil
}
