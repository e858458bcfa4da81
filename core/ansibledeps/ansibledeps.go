// Package ansibledeps finds, by reading an Ansible playbook statically, every file the playbook
// uses: the plays it imports, the task and vars files it includes and the roles it applies. An
// image's fingerprint is made from these files, so a change to any of them rebuilds the image
// and a change to a role it does not use does not.
package ansibledeps

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// roleDirs are the directories of a role Ansible reads from; README.md, tests/ and molecule/
// do not change what the role does. Plugin directories (*_plugins) are added too.
var roleDirs = map[string]bool{
	"tasks": true, "handlers": true, "defaults": true, "vars": true, "meta": true,
	"files": true, "templates": true, "library": true, "module_utils": true,
}

// TemplatedRef is a reference whose path is a Jinja expression, which only Ansible can resolve.
type TemplatedRef struct {
	File  string // the file holding the reference
	Line  int
	What  string // the keyword: include_tasks, roles, vars_files, ...
	Value string
}

// TemplatedError lists the templated references of a playbook. Files returns it together with
// every file it could find statically; the caller decides whether the image's declared inputs
// cover the rest.
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

// Files returns the sorted, slash-separated paths (relative to the root of fsys) of every file
// playbook uses, the playbook included. A missing role or file, or broken YAML, is an error.
// Templated paths give a *TemplatedError along with the files found statically.
func Files(fsys fs.FS, playbook string) ([]string, error) {
	if !fs.ValidPath(playbook) {
		return nil, fmt.Errorf("playbook %q: must be a relative path inside the repository", playbook)
	}
	w := &walker{
		fsys:    fsys,
		rootDir: path.Dir(playbook),
		files:   map[string]bool{},
		walked:  map[string]bool{},
		roles:   map[string]bool{},
	}
	if err := w.playbook(playbook); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(w.files))
	for f := range w.files {
		out = append(out, f)
	}
	sort.Strings(out)
	if len(w.templated) > 0 {
		return out, &TemplatedError{Refs: w.templated}
	}
	return out, nil
}

type walker struct {
	fsys      fs.FS
	rootDir   string          // directory of the top playbook
	files     map[string]bool // the result
	walked    map[string]bool // playbooks and task files already read
	roles     map[string]bool // role directories already added
	templated []TemplatedRef
}

// scope is where relative paths in a task list resolve.
type scope struct {
	file    string // the file holding the tasks
	playDir string // directory of the playbook of the play
	role    string // role directory, "" for a playbook's own tasks
}

func (w *walker) playbook(p string) error {
	if w.walked[p] {
		return nil
	}
	w.walked[p] = true
	w.files[p] = true
	doc, err := w.load(p)
	if err != nil || doc == nil {
		return err
	}
	if doc.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: a playbook is a list of plays", p, doc.Line)
	}
	dir := path.Dir(p)
	// Ansible loads group_vars/ and host_vars/ next to the playbook on its own.
	for _, d := range []string{"group_vars", "host_vars"} {
		if err := w.addTree(path.Join(dir, d), false); err != nil {
			return err
		}
	}
	for _, play := range doc.Content {
		play = deref(play)
		if play.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: a play must be a mapping", p, play.Line)
		}
		v := getModule(play, "import_playbook")
		if v == nil {
			v = get(play, "include") // the pre-2.16 spelling of import_playbook
		}
		if v != nil {
			s, ok, err := w.pathValue(p, v, "import_playbook")
			if err != nil || !ok {
				return err
			}
			target, err := w.find(p, v.Line, "import_playbook", s, path.Join(dir, s))
			if err != nil {
				return err
			}
			if err := w.playbook(target); err != nil {
				return err
			}
			continue
		}
		sc := scope{file: p, playDir: dir}
		if err := w.varsFiles(sc, get(play, "vars_files")); err != nil {
			return err
		}
		if roles := get(play, "roles"); roles != nil {
			if err := w.roleList(sc, roles, "roles"); err != nil {
				return err
			}
		}
		for _, k := range []string{"pre_tasks", "tasks", "post_tasks", "handlers"} {
			if err := w.tasks(sc, get(play, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// varsFiles adds a play's vars_files; an item that is a list names alternatives, the first
// existing one is used.
func (w *walker) varsFiles(sc scope, n *yaml.Node) error {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: vars_files must be a list", sc.file, n.Line)
	}
	for _, item := range n.Content {
		item = deref(item)
		alts := []*yaml.Node{item}
		if item.Kind == yaml.SequenceNode {
			alts = item.Content
		}
		var tried []string
		found := false
		for _, a := range alts {
			s, ok, err := w.pathValue(sc.file, a, "vars_files")
			if err != nil {
				return err
			}
			if !ok {
				found = true // cannot check statically; recorded as templated
				break
			}
			p := path.Join(sc.playDir, s)
			tried = append(tried, p)
			if w.isFile(p) {
				w.files[p] = true
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s:%d: vars_files: not found: %s (add the file or fix the path)", sc.file, item.Line, strings.Join(tried, ", "))
		}
	}
	return nil
}

// tasks walks a task list, following blocks, task includes and role includes.
func (w *walker) tasks(sc scope, n *yaml.Node) error {
	if n == nil {
		return nil
	}
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: want a list of tasks", sc.file, n.Line)
	}
	for _, t := range n.Content {
		t = deref(t)
		if t.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: a task must be a mapping", sc.file, t.Line)
		}
		for _, k := range []string{"block", "rescue", "always"} {
			if err := w.tasks(sc, get(t, k)); err != nil {
				return err
			}
		}
		for _, k := range []string{"include_tasks", "import_tasks", "include"} {
			if v := getModule(t, k); v != nil {
				if err := w.includeTasks(sc, k, v); err != nil {
					return err
				}
			}
		}
		for _, k := range []string{"include_role", "import_role"} {
			if v := getModule(t, k); v != nil {
				if err := w.includeRole(sc, k, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (w *walker) includeTasks(sc scope, what string, v *yaml.Node) error {
	if v.Kind == yaml.MappingNode {
		if f := get(v, "file"); f != nil {
			v = f
		} else if f := get(v, "_raw_params"); f != nil {
			v = f
		} else {
			return fmt.Errorf("%s:%d: %s: missing file", sc.file, v.Line, what)
		}
	}
	s, ok, err := w.pathValue(sc.file, v, what)
	if err != nil || !ok {
		return err
	}
	// Ansible looks in the role's tasks/ first, then next to the including file.
	var candidates []string
	if sc.role != "" {
		candidates = append(candidates, path.Join(sc.role, "tasks", s))
	}
	candidates = append(candidates, path.Join(path.Dir(sc.file), s))
	if sc.role == "" {
		candidates = append(candidates, path.Join(sc.playDir, s))
	}
	target, err := w.find(sc.file, v.Line, what, s, candidates...)
	if err != nil {
		return err
	}
	return w.taskFile(scope{file: target, playDir: sc.playDir, role: sc.role})
}

func (w *walker) includeRole(sc scope, what string, v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s: want a mapping with name: ROLE", sc.file, v.Line, what)
	}
	name := get(v, "name")
	if name == nil {
		return fmt.Errorf("%s:%d: %s: missing name", sc.file, v.Line, what)
	}
	dir, err := w.role(sc, name, what)
	if err != nil || dir == "" {
		return err
	}
	from := get(v, "tasks_from")
	if from == nil {
		return nil
	}
	s, ok, err := w.pathValue(sc.file, from, what+" tasks_from")
	if err != nil || !ok {
		return err
	}
	base := path.Join(dir, "tasks", s)
	target, err := w.find(sc.file, from.Line, what+" tasks_from", s, base, base+".yml", base+".yaml")
	if err != nil {
		return err
	}
	return w.taskFile(scope{file: target, playDir: sc.playDir, role: dir})
}

// roleList walks a play's roles: or a role's meta dependencies: (names or {role: x}/{name: x}).
func (w *walker) roleList(sc scope, n *yaml.Node, what string) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: %s must be a list of roles", sc.file, n.Line, what)
	}
	for _, item := range n.Content {
		item = deref(item)
		name := item
		if item.Kind == yaml.MappingNode {
			if name = get(item, "role"); name == nil {
				name = get(item, "name")
			}
			if name == nil {
				return fmt.Errorf("%s:%d: %s: entry has neither role: nor name:", sc.file, item.Line, what)
			}
		}
		if _, err := w.role(sc, name, what); err != nil {
			return err
		}
	}
	return nil
}

// role resolves a role reference, adds its files and walks it. It returns the role's
// directory, or "" when the name is templated.
func (w *walker) role(sc scope, name *yaml.Node, what string) (string, error) {
	s, ok, err := w.pathValue(sc.file, name, what)
	if err != nil || !ok {
		return "", err
	}
	var candidates []string
	if strings.Contains(s, "/") {
		candidates = append(candidates, path.Join(sc.playDir, s))
	}
	candidates = append(candidates, path.Join(sc.playDir, "roles", s))
	if sc.playDir != w.rootDir {
		candidates = append(candidates, path.Join(w.rootDir, "roles", s))
	}
	dir := ""
	for _, c := range candidates {
		if fi, err := fs.Stat(w.fsys, c); err == nil && fi.IsDir() {
			dir = c
			break
		}
	}
	if dir == "" {
		return "", fmt.Errorf("%s:%d: %s: role %q not found (looked in %s): add the role or fix its name",
			sc.file, name.Line, what, s, strings.Join(candidates, ", "))
	}
	if w.roles[dir] {
		return dir, nil
	}
	w.roles[dir] = true // before recursing: meta dependencies may form a cycle
	if err := w.addTree(dir, true); err != nil {
		return "", err
	}
	rs := scope{playDir: sc.playDir, role: dir}
	if meta := w.firstFile(path.Join(dir, "meta"), "main.yml", "main.yaml", "main"); meta != "" {
		doc, err := w.load(meta)
		if err != nil {
			return "", err
		}
		if doc != nil && doc.Kind == yaml.MappingNode {
			if deps := get(doc, "dependencies"); deps != nil {
				rs.file = meta
				if err := w.roleList(rs, deps, "dependencies"); err != nil {
					return "", err
				}
			}
		}
	}
	for _, sub := range []string{"tasks", "handlers"} {
		if main := w.firstFile(path.Join(dir, sub), "main.yml", "main.yaml", "main"); main != "" {
			rs.file = main
			if err := w.taskFile(rs); err != nil {
				return "", err
			}
		}
	}
	return dir, nil
}

// taskFile adds and walks a file of tasks, once.
func (w *walker) taskFile(sc scope) error {
	if w.walked[sc.file] {
		return nil
	}
	w.walked[sc.file] = true
	w.files[sc.file] = true
	doc, err := w.load(sc.file)
	if err != nil || doc == nil {
		return err
	}
	return w.tasks(sc, doc)
}

// addTree adds every file under dir (a role's: only the directories Ansible reads). A missing
// dir adds nothing. Symbolic links are added as they are: the fingerprint rejects them.
func (w *walker) addTree(dir string, role bool) error {
	entries, err := fs.ReadDir(w.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		// A linked directory counts too: the fingerprint then rejects the link by name.
		dirLike := e.IsDir() || e.Type()&fs.ModeSymlink != 0
		if role && (!dirLike || !(roleDirs[e.Name()] || strings.HasSuffix(e.Name(), "_plugins"))) {
			continue
		}
		err := fs.WalkDir(w.fsys, path.Join(dir, e.Name()), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			if !d.IsDir() {
				w.files[p] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// find returns the first candidate that is a file, or an error naming the referring file.
func (w *walker) find(from string, line int, what, value string, candidates ...string) (string, error) {
	for _, c := range candidates {
		if !fs.ValidPath(c) {
			return "", fmt.Errorf("%s:%d: %s %q: points outside the repository: keep playbooks and roles inside it", from, line, what, value)
		}
		if w.isFile(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s:%d: %s %q: file not found (looked for %s): add the file or fix the path",
		from, line, what, value, strings.Join(candidates, ", "))
}

func (w *walker) firstFile(dir string, names ...string) string {
	for _, n := range names {
		if p := path.Join(dir, n); w.isFile(p) {
			return p
		}
	}
	return ""
}

func (w *walker) isFile(p string) bool {
	fi, err := fs.Stat(w.fsys, p)
	return err == nil && !fi.IsDir()
}

// pathValue reads a scalar path. ok is false when the value is templated: it is recorded and
// the walk goes on, so that every such reference is reported at once.
func (w *walker) pathValue(file string, n *yaml.Node, what string) (s string, ok bool, err error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		return "", false, fmt.Errorf("%s:%d: %s: want a file or role name", file, n.Line, what)
	}
	if strings.Contains(n.Value, "{{") {
		w.templated = append(w.templated, TemplatedRef{File: file, Line: n.Line, What: what, Value: n.Value})
		return "", false, nil
	}
	return n.Value, true, nil
}

// load parses a YAML file and returns its top node, nil for an empty file.
func (w *walker) load(p string) (*yaml.Node, error) {
	data, err := fs.ReadFile(w.fsys, p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w (fix the YAML)", p, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return deref(doc.Content[0]), nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// getModule is get for a module that may also be spelled by its FQCN.
func getModule(m *yaml.Node, name string) *yaml.Node {
	for _, k := range []string{name, "ansible.builtin." + name, "ansible.legacy." + name} {
		if v := get(m, k); v != nil {
			return v
		}
	}
	return nil
}
