// Package record stores what was built: one JSON record per image in S3, a plain <image>.txt
// with the AMI id for existing consumers, and an index by fingerprint so that a revert reuses
// the AMI already built for those inputs.
package record

import (
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
}

// AMI is the id in the build region: the one children are built from.
func (r *Record) AMI() string { return r.AMIs[r.Region] }
