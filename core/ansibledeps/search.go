package ansibledeps

import (
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// The search orders below follow ansible-core 2.14 (parsing/dataloader.py, playbook/role/
// definition.py). Where a file could be found in more than one place, every existing
// candidate is hashed: which one Ansible takes depends on files that may appear later.

// searchPaths is the task's search path (ansible_search_path): its roles, the folder of the
// task file, then the playbook's folder and the top playbook's folder as last resorts.
func (w *walker) searchPaths(sc scope) []string {
	paths := append([]string(nil), sc.roles...)
	if sc.file != "" {
		paths = appendNew(paths, path.Dir(sc.file))
	}
	return appendNew(appendNew(paths, sc.base), w.topDir)
}

// dwimStack lists where Ansible looks for source, with dirname (files, templates, vars) as
// the conventional subfolder, for a task with the given search paths.
func dwimStack(paths []string, dirname, source string, inRole bool) []string {
	if p, ok := anchored(source); ok {
		return p
	}
	if strings.HasPrefix(source, "/") || strings.HasPrefix(source, "~") {
		return nil
	}
	var out []string
	first := strings.Split(source, "/")[0]
	for _, p := range paths {
		parent := path.Dir(p)
		if inRole && (strings.HasSuffix(parent, "/tasks") || parent == "tasks") {
			out = append(out, path.Join(path.Dir(parent), dirname, source), path.Join(parent, source))
			continue
		}
		if first != dirname {
			out = append(out, path.Join(p, dirname, source))
		}
		out = append(out, path.Join(p, source))
	}
	return out
}

// dwimRelative is Ansible's path_dwim_relative: where a role's include or a file relative to
// p is looked for. Relative paths that Ansible resolves against the working directory are
// relative to the repository root here.
func dwimRelative(p, dirname, source, base string, isRole bool) []string {
	if a, ok := anchored(source); ok {
		return a
	}
	if strings.HasPrefix(source, "/") || strings.HasPrefix(source, "~") {
		return nil
	}
	basedir := p
	if isRole && (strings.HasSuffix(p, "/tasks") || p == "tasks") {
		basedir = path.Dir(p)
	}
	out := []string{path.Join(p, dirname, source), path.Join(basedir, dirname, source)}
	if isRole && !strings.HasSuffix(source, dirname) {
		out = append(out, path.Join(basedir, "tasks", source))
	}
	return append(out,
		path.Join(dirname, source),
		path.Join(basedir, source),
		path.Join(base, dirname, source),
		path.Join(base, source))
}

// roleSearch is where a role name is looked for after the collections: roles/ beside the
// playbook, roles_path, the depending role's folder, the playbook's folder.
func (w *walker) roleSearch(base, roleBase string) []string {
	out := []string{path.Join(base, "roles")}
	out = append(out, w.cfg.rolesPath...)
	if roleBase != "" {
		out = append(out, roleBase)
	}
	return append(out, base)
}

// findRole returns the folder of role name, the collection it came from (if any) and the
// folders it looked in.
func (w *walker) findRole(name string, colls, search []string) (dir, coll string, looked []string) {
	if strings.Count(name, ".") >= 2 || len(colls) > 0 {
		var fqcns []string
		if strings.Count(name, ".") >= 2 {
			fqcns = []string{name}
		} else {
			for _, c := range colls {
				fqcns = append(fqcns, c+"."+name)
			}
		}
		for _, f := range fqcns {
			i := strings.LastIndexByte(f, '.')
			if c := w.collection(f[:i]); c != nil {
				d := path.Join(c.dir, "roles", f[i+1:])
				looked = append(looked, d)
				if w.isDir(d) {
					return d, f[:i], looked
				}
			}
		}
		if strings.Count(name, ".") >= 2 {
			return "", "", append(looked, "collections "+name[:strings.LastIndexByte(name, '.')])
		}
	}
	for _, s := range search {
		d := path.Join(s, name)
		looked = append(looked, d)
		if w.exists(d) {
			return d, "", looked
		}
	}
	// Last, the name as a path from the working directory (the repository root).
	looked = append(looked, path.Clean(name))
	if w.exists(name) {
		return path.Clean(name), "", looked
	}
	return "", "", looked
}

// rootMark starts a value that expand made absolute: {{ playbook_dir }} and {{ role_path }}
// are absolute paths in Ansible, here relative to the repository root.
const rootMark = "\x00"

// anchored returns the one path an absolute value names.
func anchored(s string) ([]string, bool) {
	rest, ok := strings.CutPrefix(s, rootMark)
	if !ok {
		return nil, false
	}
	return []string{path.Clean(strings.ReplaceAll(rest, rootMark, ""))}, true
}

var varRef = regexp.MustCompile(`\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*-?\}\}`)

// expand replaces the variables whose value is known statically: playbook_dir, role_path,
// the loop's item and plain strings set in the play's or role's vars.
func (w *walker) expand(sc scope, s string, item map[string]string) string {
	for range 4 { // values may refer to other values
		if !strings.Contains(s, "{{") {
			return s
		}
		next := varRef.ReplaceAllStringFunc(s, func(m string) string {
			name := varRef.FindStringSubmatch(m)[1]
			switch {
			case name == "playbook_dir":
				return rootMark + sc.base
			case name == "role_path" && sc.role() != "":
				return rootMark + sc.role()
			case item != nil && (name == "item" || strings.HasPrefix(name, "item.")):
				if v, ok := item[name]; ok {
					return v
				}
			case sc.vars != nil:
				if v, ok := sc.vars[name]; ok {
					return v
				}
			}
			return m
		})
		if next == s {
			return s
		}
		s = next
	}
	return s
}

// pathValues reads a path that may name the loop's item: one value per item. ok is false
// when a value stays templated: the reference is recorded with where (the folders it is
// searched in) and the walk goes on, so that every such reference is reported at once.
func (w *walker) pathValues(sc scope, n *yaml.Node, what string, where []string, items []map[string]string) ([]string, bool, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		return nil, false, errorf(sc.file, n.Line, "%s: want a file or role name", what)
	}
	if !strings.Contains(n.Value, "{{") {
		return []string{n.Value}, true, nil
	}
	if items == nil {
		items = []map[string]string{nil}
	}
	var out []string
	for _, it := range items {
		v := w.expand(sc, n.Value, it)
		if strings.Contains(v, "{{") {
			w.hashedForRef = w.templatedRef(sc.file, n.Line, what, n.Value, where)
			return nil, false, nil
		}
		out = append(out, v)
	}
	return out, true, nil
}

func (w *walker) pathValue(sc scope, n *yaml.Node, what string, where []string) (string, bool, error) {
	vs, ok, err := w.pathValues(sc, n, what, where, nil)
	if !ok || err != nil {
		return "", ok, err
	}
	return vs[0], true, nil
}

// templatedRef records a reference only Ansible can resolve. It is searched in the folders of
// where joined with the value's static leading folders ("tasks/{{ os }}.yml": tasks/). Such a
// folder that is a conventional one (files/, templates/, vars/, tasks/ or below), or named by
// the static part, is hashed whole: Ansible searches it. It returns the folders hashed.
func (w *walker) templatedRef(file string, line int, what, value string, where []string) []string {
	prefix := value
	if i := strings.Index(value, "{{"); i >= 0 {
		prefix = value[:i]
	}
	prefix = prefix[:strings.LastIndexByte(prefix, '/')+1]
	var dirs, hashed []string
	for _, d := range where {
		if strings.HasPrefix(prefix, "/") {
			break
		}
		dir := path.Join(d, prefix)
		dirs = appendNew(dirs, dir)
		if (prefix != "" || conventional(d)) && w.isDir(dir) && dir != w.topDir && dir != "." {
			w.addTree(dir)
			hashed = append(hashed, dir)
		}
	}
	w.templated = append(w.templated, TemplatedRef{File: file, Line: line, What: what, Value: value, Where: dirs})
	return hashed
}

// conventional reports whether dir is a folder Ansible searches by convention.
func conventional(dir string) bool {
	switch path.Base(dir) {
	case "files", "templates", "vars", "tasks", "handlers":
		return true
	}
	return false
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
