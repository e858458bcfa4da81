package build

import (
	"context"

	"github.com/amichain/amichain/core/ansibletrace"

	"github.com/amichain/amichain/core/tree"
)

// Request is everything a Builder needs to build one image.
type Request struct {
	Image       tree.Image
	ParentAMI   string
	Fingerprint string
	Commit      string
	// Forced is set when the user forced this build; builders with a cache must bypass it.
	Forced bool
}

// Result is a built image.
type Result struct {
	// Region is the region the image was built in; AMIs also holds the copies.
	Region string
	AMIs   map[string]string
	// Reads are the repository paths Ansible read during the build (core/ansibletrace), when
	// the builder traces them.
	Reads []ansibletrace.Read
}

// Builder builds one image. The Packer runner is the real one.
type Builder interface {
	Build(ctx context.Context, req Request) (Result, error)
}
