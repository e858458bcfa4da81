// Package ansibletrace records what ansible-playbook really reads: a Python audit hook
// (sitecustomize.py, loaded through PYTHONPATH) reports each file opened for reading and each
// folder listed under the working directory, once per path, as a marker line on standard
// error. Packer's ansible provisioner inherits Packer's environment and relays Ansible's
// output as its own ui lines, so setting the environment of Packer is enough, and a marker is
// found anywhere in a line (after Packer's prefix).
package ansibletrace

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed sitecustomize.py
var hook []byte

// Marker starts the JSON of one read in a line of output.
const Marker = "amichain-ansible-read: "

// HookFile is the name Python loads the hook by.
const HookFile = "sitecustomize.py"

// Hook returns the source of the audit hook, to be written as sitecustomize.py into a folder
// put on PYTHONPATH (see Env).
func Hook() []byte { return append([]byte(nil), hook...) }

// Install writes the hook into dir (created if missing) and returns the environment entries
// that load it in every ansible-playbook started with them: add them to Packer's environment.
// environ is the environment they extend (os.Environ() for a host runner), for PYTHONPATH.
func Install(dir string, environ []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ansible trace hook: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, HookFile), hook, 0o644); err != nil {
		return nil, fmt.Errorf("ansible trace hook: %w", err)
	}
	return Env(dir, environ), nil
}

// Env returns the environment entries that load the hook installed in dir (an absolute path
// in the machine or container Packer runs in): PYTHONPATH with dir first, and no bytecode
// written into the repository (a __pycache__ beside a filter plugin is not an input).
func Env(dir string, environ []string) []string {
	pp := dir
	for _, e := range environ {
		if v, ok := strings.CutPrefix(e, "PYTHONPATH="); ok && v != "" {
			pp = dir + string(os.PathListSeparator) + v
		}
	}
	return []string{"PYTHONPATH=" + pp, "PYTHONDONTWRITEBYTECODE=1"}
}

// Kind says what was read.
type Kind string

const (
	File Kind = "file" // a file opened for reading
	Dir  Kind = "dir"  // a folder listed
)

// Read is one path Ansible read, slash-separated and relative to the repository root.
type Read struct {
	Path string `json:"path"`
	Kind Kind   `json:"kind"`
}

// Parse finds a marker in line (anywhere: Packer prefixes what it relays) and decodes it. A
// path outside the repository, or not a clean relative path, is not a read.
func Parse(line string) (Read, bool) {
	i := strings.Index(line, Marker)
	if i < 0 {
		return Read{}, false
	}
	var r Read
	dec := json.NewDecoder(strings.NewReader(line[i+len(Marker):]))
	if err := dec.Decode(&r); err != nil {
		return Read{}, false
	}
	if !fs.ValidPath(r.Path) || r.Path == "." || (r.Kind != File && r.Kind != Dir) {
		return Read{}, false
	}
	return r, true
}

// Reads collects reads, each once.
type Reads struct {
	seen map[Read]bool
}

// Line adds the read in line, if any, and reports whether the line was a marker.
func (rs *Reads) Line(line string) bool {
	r, ok := Parse(line)
	if !ok {
		return false
	}
	if rs.seen == nil {
		rs.seen = map[Read]bool{}
	}
	rs.seen[r] = true
	return true
}

// List returns the reads sorted by path, files before folders of the same path.
func (rs *Reads) List() []Read {
	var out []Read
	for r := range rs.seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Kind > out[j].Kind
	})
	return out
}
