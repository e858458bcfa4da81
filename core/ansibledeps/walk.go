package ansibledeps

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// roleDirs are the folders of a role Ansible reads from; README.md, tests/ and molecule/ do
// not change what the role does. Plugin folders (*_plugins) count too.
var roleDirs = map[string]bool{
	"tasks": true, "handlers": true, "defaults": true, "vars": true, "meta": true,
	"files": true, "templates": true, "library": true, "module_utils": true,
}

type walker struct {
	fsys      fs.FS
	topDir    string          // folder of the playbook given to ansible-playbook
	cfg       config          // ansible.cfg at the repository root
	files     map[string]bool // the result
	dirs      map[string]bool // folders hashed whole
	lists     map[string]bool // folders whose listing Ansible reads (a fileglob)
	walked    map[string]bool // playbooks and task files already read
	plays     map[string]bool // the playbooks
	roles     map[string]bool // role folders already added
	templates map[string]bool // templates already scanned for Jinja includes
	used      map[string]bool // collections (ns.name) a play names
	texts     map[string]bool // YAML and template files read: scanned for collection names
	colls     []collection    // collections kept in the repository
	templated []TemplatedRef
	// hashedForRef are the folders the last templated reference hashed whole.
	hashedForRef []string
}

// scope is where relative paths of a task list resolve.
type scope struct {
	file  string   // the file holding the tasks
	base  string   // folder of the playbook of the play (Ansible's loader basedir)
	roles []string // role folders: the current role first, then the roles it came through
	colls []string // the play's or role's collections: keyword
	vars  map[string]string
}

func (sc scope) role() string {
	if len(sc.roles) == 0 {
		return ""
	}
	return sc.roles[0]
}

func (w *walker) playbook(p string) error {
	if w.walked[p] {
		return nil
	}
	w.walked[p] = true
	w.plays[p] = true
	w.files[p] = true
	w.texts[p] = true
	doc, err := w.load(p)
	if err != nil || doc == nil {
		return err
	}
	if doc.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: a playbook is a list of plays", p, doc.Line)
	}
	dir := path.Dir(p)
	// Ansible loads group_vars/ and host_vars/ next to the playbook, the plugin folders beside
	// every playbook it loads and the collections beside the one it is given.
	for _, d := range []string{"group_vars", "host_vars", "library", "module_utils"} {
		w.addTree(path.Join(dir, d))
	}
	w.pluginDirs(dir)
	if err := w.scanVarsTree(scope{base: dir}, path.Join(dir, "group_vars")); err != nil {
		return err
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
			if err := w.importPlaybook(p, dir, v); err != nil {
				return err
			}
			continue
		}
		sc := scope{file: p, base: dir, colls: stringList(get(play, "collections")), vars: map[string]string{}}
		for _, c := range sc.colls {
			w.used[c] = true
		}
		w.staticVars(sc.vars, get(play, "vars"))
		w.scanStrings(sc, play)
		if err := w.varsFiles(sc, get(play, "vars_files")); err != nil {
			return err
		}
		if roles := get(play, "roles"); roles != nil {
			if err := w.roleList(sc, roles, "roles", ""); err != nil {
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

func (w *walker) importPlaybook(p, dir string, v *yaml.Node) error {
	if v.Kind == yaml.MappingNode { // import_playbook: {file: x}
		if f := get(v, "file"); f != nil {
			v = f
		} else if f := get(v, "_raw_params"); f != nil {
			v = f
		}
	}
	sc := scope{file: p, base: dir}
	s, ok, err := w.pathValue(sc, v, "import_playbook", []string{dir})
	if err != nil || !ok {
		return err
	}
	target, err := w.find(p, v.Line, "import_playbook", s, path.Join(dir, s))
	if err != nil {
		return err
	}
	return w.playbook(target)
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
			s, ok, err := w.pathValue(sc, a, "vars_files", []string{sc.base})
			if err != nil {
				return err
			}
			if !ok {
				found = true // cannot check statically; recorded as templated
				break
			}
			p := path.Join(sc.base, s)
			tried = append(tried, p)
			if w.isFile(p) {
				if err := w.varsFile(sc, p); err != nil {
					return err
				}
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

// varsFile adds a file of variables and follows the lookups in its values.
func (w *walker) varsFile(sc scope, p string) error {
	w.files[p] = true
	if w.walked[p] {
		return nil
	}
	w.walked[p] = true
	w.texts[p] = true
	doc, err := w.load(p)
	if err != nil || doc == nil {
		return err
	}
	sc.file = p
	if sc.vars != nil {
		w.staticVars(sc.vars, doc)
	}
	w.scanStrings(sc, doc)
	return nil
}

// scanVarsTree follows the lookups of every YAML file under dir (group_vars/, a role's vars).
func (w *walker) scanVarsTree(sc scope, dir string) error {
	return w.walkFiles(dir, func(p string) error {
		if ext := path.Ext(p); ext == ".yml" || ext == ".yaml" || ext == ".json" || ext == "" {
			// Ansible fails on a broken vars file too, but a file it skips (README) must not
			// fail the analysis: only what parses is scanned.
			if doc, err := w.load(p); err == nil && doc != nil {
				w.texts[p] = true
				sc.file = p
				w.scanStrings(sc, doc)
			}
		}
		return nil
	})
}

// tasks walks a task list, following blocks, includes, roles and the files modules use.
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
		if err := w.task(sc, t); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) task(sc scope, t *yaml.Node) error {
	for _, k := range []string{"block", "rescue", "always"} {
		if err := w.tasks(sc, get(t, k)); err != nil {
			return err
		}
	}
	mod, args := module(t)
	items := loopItems(t)
	for _, k := range []string{"include_tasks", "import_tasks", "include"} {
		if mod == k {
			return w.includeTasks(sc, k, args, items)
		}
	}
	for _, k := range []string{"include_role", "import_role"} {
		if mod == k {
			return w.includeRole(sc, k, args)
		}
	}
	if strings.Count(mod, ".") >= 2 {
		w.used[collectionOf(mod)] = true
	}
	w.scanStrings(sc, t)
	w.loopLookups(sc, t, mod)
	return w.moduleFiles(sc, mod, args, items, loopFromLookup(t))
}

func (w *walker) includeTasks(sc scope, what string, v *yaml.Node, items []map[string]string) error {
	if v == nil {
		return nil
	}
	if v.Kind == yaml.MappingNode {
		if f := get(v, "file"); f != nil {
			v = f
		} else if f := get(v, "_raw_params"); f != nil {
			v = f
		} else {
			return fmt.Errorf("%s:%d: %s: missing file", sc.file, v.Line, what)
		}
	}
	role := sc.role()
	where := []string{path.Dir(sc.file), sc.base}
	if role != "" {
		where = []string{path.Join(role, "tasks"), path.Dir(sc.file), sc.base}
	}
	values, ok, err := w.pathValues(sc, v, what, where, items)
	if err != nil {
		return err
	}
	if !ok {
		// Any task file of the folders searched may be the one: follow each.
		for _, d := range w.hashedForRef {
			w.walkTaskFiles(sc, d)
		}
		return nil
	}
	for _, s := range values {
		// Ansible looks in the role's tasks/ first, then next to the including file, then
		// in the playbook's folder.
		candidates, _ := anchored(s)
		switch {
		case candidates != nil:
		case role != "":
			candidates = append(candidates, path.Join(role, "tasks", s), path.Join(path.Dir(sc.file), s))
			candidates = append(candidates, dwimRelative(role, "tasks", s, sc.base, true)...)
		default:
			candidates = append(candidates, path.Join(path.Dir(sc.file), s), path.Join(sc.base, s), path.Join(w.topDir, s), s)
		}
		target, err := w.find(sc.file, v.Line, what, s, candidates...)
		if err != nil {
			return err
		}
		if err := w.taskFile(scope{file: target, base: sc.base, roles: sc.roles, colls: sc.colls, vars: sc.vars}); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) includeRole(sc scope, what string, v *yaml.Node) error {
	if v == nil || v.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s: want a mapping with name: ROLE", sc.file, v.Line, what)
	}
	name := get(v, "name")
	if name == nil {
		return fmt.Errorf("%s:%d: %s: missing name", sc.file, v.Line, what)
	}
	dir, err := w.role(sc, name, what, "")
	if err != nil || dir == "" {
		return err
	}
	from := get(v, "tasks_from")
	if from == nil {
		return nil
	}
	rs := scope{file: sc.file, base: sc.base, roles: append([]string{dir}, sc.roles...), colls: sc.colls, vars: sc.vars}
	s, ok, err := w.pathValue(rs, from, what+" tasks_from", []string{path.Join(dir, "tasks")})
	if err != nil || !ok {
		return err
	}
	base := path.Join(dir, "tasks", s)
	target, err := w.find(sc.file, from.Line, what+" tasks_from", s, base, base+".yml", base+".yaml")
	if err != nil {
		return err
	}
	rs.file = target
	return w.taskFile(rs)
}

// roleList walks a play's roles: or a role's meta dependencies: (names or {role: x}/{name: x}).
// roleBase is the folder of the depending role, where Ansible also looks for dependencies.
func (w *walker) roleList(sc scope, n *yaml.Node, what, roleBase string) error {
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
			w.scanStrings(sc, item)
		}
		if _, err := w.role(sc, name, what, roleBase); err != nil {
			return err
		}
	}
	return nil
}

// role resolves a role reference the way Ansible does (collections, roles/ beside the playbook,
// roles_path, the depending role's folder, the playbook's folder, the repository root), adds
// its files and walks it. It returns the role's folder, or "" when the name is templated.
func (w *walker) role(sc scope, name *yaml.Node, what, roleBase string) (string, error) {
	search := w.roleSearch(sc.base, roleBase)
	s, ok, err := w.pathValue(sc, name, what, search)
	if err != nil || !ok {
		return "", err
	}
	dir, coll, candidates := w.findRole(s, sc.colls, search)
	if dir == "" {
		return "", fmt.Errorf("%s:%d: %s: role %q not found (looked in %s): add the role or fix its name",
			sc.file, name.Line, what, s, strings.Join(candidates, ", "))
	}
	if coll != "" {
		w.used[coll] = true
	}
	if w.roles[dir] {
		return dir, nil
	}
	w.roles[dir] = true // before recursing: meta dependencies may form a cycle
	if err := w.addRole(dir); err != nil {
		return "", err
	}
	rs := scope{base: sc.base, roles: append([]string{dir}, sc.roles...), colls: sc.colls, vars: map[string]string{}}
	if coll != "" {
		rs.colls = append([]string{coll}, sc.colls...)
	}
	for _, sub := range []string{"defaults", "vars"} {
		if main := w.firstFile(path.Join(dir, sub), "main.yml", "main.yaml", "main", "main.json"); main != "" {
			if doc, err := w.load(main); err == nil && doc != nil {
				w.staticVars(rs.vars, doc)
			}
		}
		if err := w.scanVarsTree(rs, path.Join(dir, sub)); err != nil {
			return "", err
		}
	}
	if meta := w.firstFile(path.Join(dir, "meta"), "main.yml", "main.yaml", "main"); meta != "" {
		doc, err := w.load(meta)
		if err != nil {
			return "", err
		}
		if doc != nil && doc.Kind == yaml.MappingNode {
			rs.file = meta
			if cs := stringList(get(doc, "collections")); len(cs) > 0 {
				rs.colls = append(cs, rs.colls...)
				for _, c := range cs {
					w.used[c] = true
				}
			}
			if deps := get(doc, "dependencies"); deps != nil {
				if err := w.roleList(rs, deps, "dependencies", path.Dir(dir)); err != nil {
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
	// Task files no include names statically may still be included by a templated name:
	// their own references are followed too.
	w.walkTaskFiles(rs, path.Join(dir, "tasks"))
	return dir, nil
}

// walkTaskFiles walks every task list under dir not walked yet. A file nothing names is only
// walked in case it is included by a templated name: it must not fail the analysis.
func (w *walker) walkTaskFiles(sc scope, dir string) {
	_ = w.walkFiles(dir, func(p string) error {
		if ext := path.Ext(p); ext != ".yml" && ext != ".yaml" {
			return nil
		}
		if doc, err := w.load(p); err == nil && doc != nil && doc.Kind == yaml.SequenceNode && !w.walked[p] {
			sc.file = p
			_ = w.taskFile(sc)
		}
		return nil
	})
}

// taskFile adds and walks a file of tasks, once.
func (w *walker) taskFile(sc scope) error {
	if w.walked[sc.file] {
		return nil
	}
	w.walked[sc.file] = true
	w.files[sc.file] = true
	w.texts[sc.file] = true
	doc, err := w.load(sc.file)
	if err != nil || doc == nil {
		return err
	}
	return w.tasks(sc, doc)
}

// addRole hashes the folders of a role Ansible reads, each whole.
func (w *walker) addRole(dir string) error {
	entries, err := fs.ReadDir(w.fsys, dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		// A linked folder counts too: the fingerprint then rejects the link by name.
		dirLike := e.IsDir() || e.Type()&fs.ModeSymlink != 0
		if dirLike && (roleDirs[e.Name()] || strings.HasSuffix(e.Name(), "_plugins")) {
			w.addTree(path.Join(dir, e.Name()))
		}
	}
	return nil
}

// pluginDirs hashes the *_plugins folders in dir whole: Ansible loads every file of them.
func (w *walker) pluginDirs(dir string) {
	entries, _ := fs.ReadDir(w.fsys, dir)
	for _, e := range entries {
		if (e.IsDir() || e.Type()&fs.ModeSymlink != 0) && strings.HasSuffix(e.Name(), "_plugins") {
			w.addTree(path.Join(dir, e.Name()))
		}
	}
}

// addTree hashes every file under dir and marks dir hashed whole. A missing dir adds nothing;
// a file is added as itself. Symbolic links are added as they are: the fingerprint rejects them.
func (w *walker) addTree(dir string) {
	fi, err := fs.Lstat(w.fsys, dir)
	switch {
	case err != nil:
		return
	case !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0:
		w.files[dir] = true
		return
	}
	w.dirs[dir] = true
	_ = w.walkFiles(dir, func(p string) error {
		w.files[p] = true
		return nil
	})
}

// walkFiles calls fn for every file (and symbolic link) under dir; a missing dir has none.
// Python's __pycache__ is left out: it is derived from the sources beside it, and a build run
// in the checkout may write it.
func (w *walker) walkFiles(dir string, fn func(string) error) error {
	err := fs.WalkDir(w.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "__pycache__" {
			return fs.SkipDir
		}
		if !d.IsDir() {
			return fn(p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
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
	if !fs.ValidPath(p) {
		return false
	}
	fi, err := fs.Stat(w.fsys, p)
	return err == nil && !fi.IsDir()
}

func (w *walker) isDir(p string) bool {
	if !fs.ValidPath(p) {
		return false
	}
	fi, err := fs.Stat(w.fsys, p)
	return err == nil && fi.IsDir()
}

func (w *walker) exists(p string) bool {
	if !fs.ValidPath(p) {
		return false
	}
	_, err := fs.Stat(w.fsys, p)
	return err == nil
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
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
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

// stringList reads a scalar or a list of scalars.
func stringList(n *yaml.Node) []string {
	n = deref(n)
	switch {
	case n == nil:
		return nil
	case n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		return []string{n.Value}
	case n.Kind == yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			if c = deref(c); c.Kind == yaml.ScalarNode {
				out = append(out, c.Value)
			}
		}
		return out
	}
	return nil
}
