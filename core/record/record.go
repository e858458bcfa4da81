// Package record stores what was built: one JSON record per image in S3, a plain <image>.txt
// with the AMI id for existing consumers, and an index by fingerprint so that a revert reuses
// the AMI already built for those inputs.
package record

import (
	"fmt"
	"regexp"
	"time"

	"github.com/amichain/amichain/core/fingerprint"
)

// Scheme is the version of the record format and of the fingerprint scheme.
const Scheme = 1

// Record is what amichain knows about one built AMI.
type Record struct {
	Scheme      int    `json:"scheme"`
	Image       string `json:"image"`
	Fingerprint string `json:"fingerprint"`
	// Region is the region the image was built in; AMIs[Region] is the id chained into children.
	Region    string              `json:"region"`
	AMIs      map[string]string   `json:"amis"`
	Inputs    []fingerprint.Input `json:"inputs"`
	Parent    string              `json:"parent,omitempty"`
	ParentAMI string              `json:"parent_ami"`
	Commit    string              `json:"commit,omitempty"`
	Branch    string              `json:"branch,omitempty"`
	BuiltAt   time.Time           `json:"built_at"`
	Tools     map[string]string   `json:"tools"`
	// Reads are what Ansible was seen to read during the build ("file:..." digests, "dir:..."
	// listings): a later change to one makes the image stale even if the fingerprint missed
	// it. Records written before it have none.
	Reads []fingerprint.Input `json:"reads,omitempty"`
	// PrunedAt is set on an index entry whose AMI prune deregistered: it is never reused
	// nor made current again.
	PrunedAt *time.Time `json:"pruned_at,omitempty"`
}

// AMI is the id in the build region: the one children are built from.
func (r *Record) AMI() string { return r.AMIs[r.Region] }

var (
	validImage       = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	validFingerprint = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:._-]{0,199}$`)
	validRegion      = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+$`)
	validAMI         = regexp.MustCompile(`^ami-[0-9a-f]+$`)
)

// Validate checks what the store relies on: names safe for S3 keys, a known scheme, and an
// AMI id for the build region.
func (r *Record) Validate() error {
	if !validImage.MatchString(r.Image) {
		return fmt.Errorf("record image %q: use lower-case letters, digits and dashes, as in amichain.yaml", r.Image)
	}
	switch {
	case r.Scheme < 1:
		return fmt.Errorf("record for image %q: scheme %d: missing (this amichain writes scheme %d)", r.Image, r.Scheme, Scheme)
	case r.Scheme > Scheme:
		return fmt.Errorf("record for image %q: scheme %d is newer than this amichain understands (%d): upgrade amichain", r.Image, r.Scheme, Scheme)
	}
	if !validFingerprint.MatchString(r.Fingerprint) {
		return fmt.Errorf("record for image %q: fingerprint %q: want letters, digits and '.:_-' (at most 200)", r.Image, r.Fingerprint)
	}
	if !validRegion.MatchString(r.Region) {
		return fmt.Errorf("record for image %q: region %q is not an AWS region (like us-east-1)", r.Image, r.Region)
	}
	if _, ok := r.AMIs[r.Region]; !ok {
		return fmt.Errorf("record for image %q: no AMI id for its build region %s in amis", r.Image, r.Region)
	}
	for region, id := range r.AMIs {
		if !validRegion.MatchString(region) {
			return fmt.Errorf("record for image %q: amis: region %q is not an AWS region (like us-east-1)", r.Image, region)
		}
		if !validAMI.MatchString(id) {
			return fmt.Errorf("record for image %q: amis[%s] = %q is not an AMI id (ami-...)", r.Image, region, id)
		}
	}
	if r.Parent != "" && !validImage.MatchString(r.Parent) {
		return fmt.Errorf("record for image %q: parent %q is not an image name", r.Image, r.Parent)
	}
	if r.ParentAMI != "" && !validAMI.MatchString(r.ParentAMI) {
		return fmt.Errorf("record for image %q: parent_ami %q is not an AMI id (ami-...)", r.Image, r.ParentAMI)
	}
	return nil
}
