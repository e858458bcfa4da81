package build

import (
	"fmt"
	"strings"

	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/core/fingerprint"
)

// ReadHasher digests what a build was seen to read (*fingerprint.Hasher), so the record keeps
// it and a later plan notices when it changes.
type ReadHasher interface {
	Reads(reads []ansibletrace.Read) ([]fingerprint.Input, error)
}

// reads returns the digests of what the build read, for its record, and a note for each read
// the static analysis did not find: a gap there is visible the first time it matters. The
// AMI is built either way: a read that cannot be digested is a note, not a failure.
func (e *Executor) reads(static []fingerprint.Input, res Result) ([]fingerprint.Input, []string) {
	rh, ok := e.Planner.Hasher.(ReadHasher)
	if !ok || len(res.Reads) == 0 {
		return nil, nil
	}
	notes := unforeseen(static, res.Reads)
	digests, err := rh.Reads(res.Reads)
	if err != nil {
		notes = append(notes, fmt.Sprintf("what ansible read is not recorded: %v", err))
	}
	return digests, notes
}

// unforeseen lists the reads no static input accounts for: a file that is not an input, a
// folder that is not listed and holds no input.
func unforeseen(static []fingerprint.Input, reads []ansibletrace.Read) []string {
	names := map[string]bool{}
	for _, in := range static {
		names[in.Name] = true
	}
	var notes []string
	for _, r := range reads {
		if names[string(r.Kind)+":"+r.Path] {
			continue
		}
		if r.Kind == ansibletrace.Dir && holdsInput(static, r.Path) {
			continue
		}
		what := r.Path
		if r.Kind == ansibletrace.Dir {
			what = "the listing of " + r.Path + "/"
		}
		notes = append(notes, fmt.Sprintf("ansible read %s, which the static analysis did not find", what))
	}
	return notes
}

func holdsInput(static []fingerprint.Input, dir string) bool {
	for _, in := range static {
		if strings.HasPrefix(in.Name, "file:"+dir+"/") {
			return true
		}
	}
	return false
}

// writeNotes adds each image's notes below the summary table.
func writeNotes(b *strings.Builder, outcomes []Outcome) {
	for _, o := range outcomes {
		for _, n := range o.Notes {
			fmt.Fprintf(b, "%s: %s\n", o.Image, n)
		}
	}
}
