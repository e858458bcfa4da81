// Package ansibledeps finds, by reading an Ansible playbook statically, every file of the
// repository Ansible may read while running it: the plays it imports, task, vars, template and
// plain files its tasks use (searched the way Ansible searches them), the roles its plays can
// reach, plugin folders, collections kept in the repository and ansible.cfg. An image's
// fingerprint is made from these files, so a change to any of them rebuilds the image and a
// change to a role it does not use does not.
//
// Where a path is only known at run time the analysis is conservative: a folder Ansible may
// list or search is hashed whole. A templated path outside every such folder is reported, so
// the image declares what it can use.
package ansibledeps

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
)

// Deps is what one playbook is made of, paths slash-separated and relative to the repository
// root (Packer runs ansible-playbook there).
type Deps struct {
	// Files are every file Ansible may read, sorted.
	Files []string
	// Dirs are the folders hashed whole, sorted: Ansible lists or searches them. Their files
	// are in Files.
	Dirs []string
	// Listed are folders whose listing Ansible reads (a fileglob in the playbook's folder)
	// without each file of them being an input: only the matching files are in Files.
	Listed []string
	// Templated are the references only Ansible can resolve and no hashed folder covers.
	Templated []TemplatedRef

	// bases are the playbooks' folders: broad, so only an input directly in one covers a
	// reference searched there.
	bases map[string]bool
}

// TemplatedRef is a reference whose path is a Jinja expression, which only Ansible can resolve.
type TemplatedRef struct {
	File  string // the file holding the reference
	Line  int
	What  string // the keyword: include_tasks, roles, vars_files, template src, ...
	Value string
	// Where are the folders the reference is searched in: a declared input inside one of
	// them (or holding one of them) covers it.
	Where []string
}

// TemplatedError lists templated references that no declared input covers.
type TemplatedError struct {
	Refs []TemplatedRef
}

func (e *TemplatedError) Error() string {
	msgs := make([]string, len(e.Refs))
	for i, r := range e.Refs {
		msgs[i] = fmt.Sprintf("%s:%d: %s %q is templated and cannot be followed statically", r.File, r.Line, r.What, r.Value)
	}
	return strings.Join(msgs, "; ") + ": use a static path, or list the files it can use in the image's inputs in amichain.yaml"
}

// Check returns a *TemplatedError for the templated references none of inputs covers. An input
// covers a reference when it lies inside a folder the reference is searched in (directly, for
// a playbook's own folder), or holds one.
func (d *Deps) Check(inputs []string) error {
	var out []TemplatedRef
	for _, r := range d.Templated {
		if !d.covered(r.Where, inputs) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &TemplatedError{Refs: out}
}

func (d *Deps) covered(where, inputs []string) bool {
	for _, in := range inputs {
		in = path.Clean(in)
		for _, w := range where {
			inside := within(in, w)
			if d.bases[w] || w == "." {
				inside = path.Dir(in) == w
			}
			if inside || within(w, in) {
				return true
			}
		}
	}
	return false
}

// within reports whether p is dir or lies under it.
func within(p, dir string) bool {
	return dir == "." || p == dir || strings.HasPrefix(p, dir+"/")
}

// Files returns the files playbook uses, sorted. Templated references not covered by a
// hashed folder give a *TemplatedError along with the files.
func Files(fsys fs.FS, playbook string) ([]string, error) {
	d, err := Analyze(fsys, playbook)
	if err != nil {
		return nil, err
	}
	return d.Files, d.Check(nil)
}

// Analyze reads playbook and everything it uses. A missing role or playbook, or broken YAML
// in a file Ansible must parse, is an error naming the file and line.
func Analyze(fsys fs.FS, playbook string) (*Deps, error) {
	if !fs.ValidPath(playbook) {
		return nil, fmt.Errorf("playbook %q: must be a relative path inside the repository", playbook)
	}
	w := &walker{
		fsys:      fsys,
		topDir:    path.Dir(playbook),
		files:     map[string]bool{},
		dirs:      map[string]bool{},
		lists:     map[string]bool{},
		walked:    map[string]bool{},
		roles:     map[string]bool{},
		templates: map[string]bool{},
		used:      map[string]bool{},
		plays:     map[string]bool{},
		texts:     map[string]bool{},
	}
	if err := w.loadConfig(); err != nil {
		return nil, err
	}
	if err := w.playbook(playbook); err != nil {
		return nil, err
	}
	if err := w.collectionsUsed(); err != nil {
		return nil, err
	}
	d := &Deps{Files: sortedKeys(w.files), Dirs: sortedKeys(w.dirs), Listed: sortedKeys(w.lists), bases: map[string]bool{}}
	for p := range w.walked {
		if w.plays[p] {
			d.bases[path.Dir(p)] = true
		}
	}
	for _, r := range w.templated {
		// A reference searched in a folder hashed whole is covered by the fingerprint.
		if !slices.ContainsFunc(r.Where, w.hashedWhole) {
			d.Templated = append(d.Templated, r)
		}
	}
	return d, nil
}

// hashedWhole reports whether dir is inside a folder hashed whole.
func (w *walker) hashedWhole(dir string) bool {
	for d := dir; ; d = path.Dir(d) {
		if w.dirs[d] {
			return true
		}
		if d == "." || d == "/" {
			return false
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
