package ansibledeps

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

func errorf(file string, line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
}

// taskKeywords are the keys of a task that are not its module.
var taskKeywords = map[string]bool{
	"name": true, "when": true, "loop": true, "loop_control": true, "register": true, "tags": true,
	"become": true, "become_user": true, "become_method": true, "become_flags": true, "become_exe": true,
	"vars": true, "args": true, "notify": true, "delegate_to": true, "delegate_facts": true,
	"ignore_errors": true, "ignore_unreachable": true, "environment": true, "changed_when": true,
	"failed_when": true, "until": true, "retries": true, "delay": true, "no_log": true,
	"block": true, "rescue": true, "always": true, "listen": true, "run_once": true,
	"check_mode": true, "diff": true, "any_errors_fatal": true, "async": true, "poll": true,
	"collections": true, "connection": true, "debugger": true, "module_defaults": true,
	"port": true, "remote_user": true, "throttle": true, "timeout": true, "local_action": false,
	"action": false,
}

// module returns a task's module, without the ansible.builtin./ansible.legacy. prefix, and its
// arguments as a mapping (free-form k=v arguments are split, the rest is _raw_params).
func module(t *yaml.Node) (string, *yaml.Node) {
	var name string
	var args *yaml.Node
	for i := 0; i+1 < len(t.Content); i += 2 {
		k := t.Content[i].Value
		if taskKeywords[k] || strings.HasPrefix(k, "with_") {
			continue
		}
		name, args = k, deref(t.Content[i+1])
		break
	}
	if name == "action" || name == "local_action" {
		switch {
		case args.Kind == yaml.ScalarNode:
			mod, rest, _ := strings.Cut(strings.TrimSpace(args.Value), " ")
			name, args = mod, &yaml.Node{Kind: yaml.ScalarNode, Value: rest, Line: args.Line}
		case args.Kind == yaml.MappingNode && get(args, "module") != nil:
			name = get(args, "module").Value
		}
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "ansible.builtin."), "ansible.legacy.")
	if args != nil && args.Kind == yaml.ScalarNode {
		args = freeForm(args)
	}
	if extra := get(t, "args"); extra != nil && extra.Kind == yaml.MappingNode {
		if args == nil || args.Kind != yaml.MappingNode {
			args = &yaml.Node{Kind: yaml.MappingNode}
		}
		merged := *args
		merged.Content = append(append([]*yaml.Node(nil), args.Content...), extra.Content...)
		args = &merged
	}
	return name, args
}

var kvArg = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

// freeForm splits "src=a dest=b" into a mapping; words that are not k=v form _raw_params.
func freeForm(n *yaml.Node) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	var raw []string
	for _, word := range splitArgs(n.Value) {
		if kv := kvArg.FindStringSubmatch(word); kv != nil && !strings.Contains(kv[1], "{{") {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: kv[1]},
				&yaml.Node{Kind: yaml.ScalarNode, Value: unquote(kv[2]), Line: n.Line})
			continue
		}
		raw = append(raw, word)
	}
	if len(raw) > 0 {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "_raw_params"},
			&yaml.Node{Kind: yaml.ScalarNode, Value: strings.Join(raw, " "), Line: n.Line})
	}
	return m
}

// splitArgs splits on spaces outside quotes and {{ }}.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case strings.HasPrefix(s[i:], "{{"):
			depth++
		case strings.HasPrefix(s[i:], "}}") && depth > 0:
			depth--
		case c == ' ' && depth == 0:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteByte(c)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// loopItems returns a static loop's items as variables (item, item.key): nil when the task
// has no loop or its items are not known statically.
func loopItems(t *yaml.Node) []map[string]string {
	var n *yaml.Node
	for _, k := range []string{"loop", "with_items", "with_list"} {
		if n = get(t, k); n != nil {
			break
		}
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	var out []map[string]string
	for _, it := range n.Content {
		it = deref(it)
		m := map[string]string{}
		switch it.Kind {
		case yaml.ScalarNode:
			m["item"] = it.Value
		case yaml.MappingNode:
			for i := 0; i+1 < len(it.Content); i += 2 {
				if v := deref(it.Content[i+1]); v.Kind == yaml.ScalarNode {
					m["item."+it.Content[i].Value] = v.Value
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// loopFromLookup reports whether the task loops over files a lookup finds (with_fileglob,
// with_first_found, loop: "{{ query('fileglob', ...) }}"): its item is then such a file.
func loopFromLookup(t *yaml.Node) bool {
	for i := 0; i+1 < len(t.Content); i += 2 {
		k := t.Content[i].Value
		if k == "with_fileglob" || k == "with_first_found" || k == "with_file" || k == "with_filetree" {
			return true
		}
		if k == "loop" || k == "with_items" || k == "with_list" {
			if v := deref(t.Content[i+1]); v.Kind == yaml.ScalarNode && lookupCall.MatchString(v.Value) {
				return true
			}
		}
	}
	return false
}

// moduleFiles adds the controller-side files a module uses: src of template, copy, script,
// unarchive and the like, include_vars files and folders.
func (w *walker) moduleFiles(sc scope, mod string, args *yaml.Node, items []map[string]string, lookupLoop bool) error {
	if args == nil || args.Kind != yaml.MappingNode {
		return nil
	}
	remote := isTrue(get(args, "remote_src")) || isFalse(get(args, "copy"))
	short := mod[strings.LastIndexByte(mod, '.')+1:]
	var src *yaml.Node
	dirname, strict := "files", true
	switch short {
	case "template", "win_template":
		src, dirname = get(args, "src"), "templates"
	case "copy", "win_copy", "unarchive":
		src = get(args, "src")
	case "script":
		if src = get(args, "cmd"); src == nil {
			src = get(args, "_raw_params")
		}
		if src != nil && src.Kind == yaml.ScalarNode {
			first, _, _ := strings.Cut(strings.TrimSpace(src.Value), " ")
			src = &yaml.Node{Kind: yaml.ScalarNode, Value: first, Line: src.Line}
		}
	case "include_vars":
		dirname = "vars"
		if d := get(args, "dir"); d != nil {
			return w.includeVarsDir(sc, d)
		}
		if src = get(args, "file"); src == nil {
			src = get(args, "_raw_params")
		}
	default:
		// Other modules with a src may mean a path on the machine being built: hash what is
		// found here, and say nothing of what is not.
		src, strict = get(args, "src"), false
	}
	if src == nil || remote || src.Kind != yaml.ScalarNode {
		return nil
	}
	inRole := sc.role() != ""
	where := w.searchDirs(sc, dirname)
	if lookupLoop && strings.Contains(src.Value, "{{") {
		return nil // the lookup's files are added where the loop is read
	}
	if !strict && strings.Contains(src.Value, "{{") {
		return nil
	}
	values, ok, err := w.pathValues(sc, src, mod+" src", where, items)
	if err != nil || !ok {
		return err
	}
	for _, v := range values {
		for _, c := range dwimStack(w.searchPaths(sc), dirname, v, inRole) {
			if !w.exists(c) {
				continue
			}
			w.addTree(c) // a folder as src is copied whole
			if dirname == "templates" {
				w.template(sc, c)
			}
			if dirname == "vars" {
				if err := w.varsFile(sc, c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// searchDirs are the folders a templated file of a task is searched in: dirname/ and the
// folder itself, for each of the task's search paths.
func (w *walker) searchDirs(sc scope, dirname string) []string {
	var out []string
	for _, p := range w.searchPaths(sc) {
		out = appendNew(appendNew(out, path.Join(p, dirname)), p)
	}
	return out
}

// includeVarsDir hashes the folder include_vars dir: reads, which Ansible resolves against
// the role's vars/ in a role, else against the folder of the task's file.
func (w *walker) includeVarsDir(sc scope, d *yaml.Node) error {
	if d.Kind != yaml.ScalarNode {
		return nil
	}
	var where []string
	if r := sc.role(); r != "" {
		where = []string{path.Join(r, "vars"), r}
	} else {
		where = []string{path.Dir(sc.file)}
	}
	values, ok, err := w.pathValues(sc, d, "include_vars dir", where, nil)
	if err != nil || !ok {
		return err
	}
	v := values[0]
	candidates, _ := anchored(v)
	switch {
	case candidates != nil:
	case sc.role() != "" && strings.Split(v, "/")[0] == "vars":
		candidates = []string{path.Join(sc.role(), v), path.Join(sc.role(), "vars", v)}
	case sc.role() != "":
		candidates = []string{path.Join(sc.role(), "vars", v)}
	default:
		candidates = []string{path.Join(path.Dir(sc.file), v)}
	}
	for _, c := range candidates {
		if w.isDir(c) {
			w.addTree(c)
			return w.scanVarsTree(sc, c)
		}
	}
	return nil
}

func isTrue(n *yaml.Node) bool {
	n = deref(n)
	return n != nil && n.Kind == yaml.ScalarNode && strings.Contains(" true yes on 1 ", " "+strings.ToLower(n.Value)+" ")
}

func isFalse(n *yaml.Node) bool {
	n = deref(n)
	return n != nil && n.Kind == yaml.ScalarNode && strings.Contains(" false no off 0 ", " "+strings.ToLower(n.Value)+" ")
}

// lookupCall finds lookup('file', ...), query('fileglob', ...), q('template', ...).
var lookupCall = regexp.MustCompile(`\b(?:lookup|query|q)\(\s*['"](?:ansible\.builtin\.|ansible\.legacy\.)?(file|template|fileglob|first_found|filetree)['"]`)

// scanStrings follows the file lookups in every string under n.
func (w *walker) scanStrings(sc scope, n *yaml.Node) {
	n = deref(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "(") {
			w.lookups(sc, n.Line, n.Value)
		}
	case yaml.MappingNode, yaml.SequenceNode, yaml.DocumentNode:
		for i, c := range n.Content {
			// Nested task lists are walked as tasks, with their own scope.
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				continue
			}
			if n.Kind == yaml.MappingNode {
				switch n.Content[i-1].Value {
				case "block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers", "roles":
					continue
				}
			}
			w.scanStrings(sc, c)
		}
	}
}

// lookups follows every file lookup in a string s found at file:line.
func (w *walker) lookups(sc scope, line int, s string) {
	for _, loc := range lookupCall.FindAllStringSubmatchIndex(s, -1) {
		plugin := s[loc[2]:loc[3]]
		args := callArgs(s[loc[1]:])
		var terms []string
		for _, a := range args {
			a = strings.TrimSpace(a)
			switch {
			case a == "":
			case kvArg.MatchString(a) && !strings.HasPrefix(a, "'") && !strings.HasPrefix(a, `"`):
				// a keyword argument (errors=, wantlist=)
			case len(a) >= 2 && (a[0] == '\'' || a[0] == '"') && a[len(a)-1] == a[0]:
				terms = append(terms, a[1:len(a)-1])
			default:
				// An expression: known when it is a variable set statically.
				if v := w.expand(sc, "{{ "+a+" }}", nil); !strings.Contains(v, "{{") {
					terms = append(terms, v)
				} else {
					dirname := "files"
					if plugin == "template" {
						dirname = "templates"
					}
					w.templatedRef(sc.file, line, "lookup('"+plugin+"')", a, w.searchDirs(sc, dirname))
				}
			}
		}
		w.lookupTerms(sc, line, plugin, terms)
	}
}

// callArgs splits the arguments after a lookup's plugin name, up to its closing parenthesis.
func callArgs(s string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ']' || c == '}') && depth > 0:
			depth--
		case c == ')' && depth > 0:
			depth--
		case c == ')':
			return append(out, cur.String())
		case c == ',' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return out
}

// lookupTerms adds what a file lookup reads: the file, the template (and what it includes),
// the folder a fileglob lists, every candidate of first_found.
func (w *walker) lookupTerms(sc scope, line int, plugin string, terms []string) {
	paths := w.searchPaths(sc)
	inRole := sc.role() != ""
	for _, t := range terms {
		if strings.Contains(t, "{{") {
			t = w.expand(sc, t, nil)
			if strings.Contains(t, "{{") {
				w.templatedRef(sc.file, line, "lookup('"+plugin+"')", t, w.searchDirs(sc, "files"))
				continue
			}
		}
		switch plugin {
		case "file", "first_found":
			for _, c := range dwimStack(paths, "files", t, inRole) {
				if w.isFile(c) {
					w.files[c] = true
				}
			}
		case "template":
			for _, c := range dwimStack(paths, "templates", t, inRole) {
				if w.isFile(c) {
					w.files[c] = true
					w.template(sc, c)
				}
			}
		case "fileglob", "filetree":
			w.fileglob(sc, t)
		}
	}
}

// fileglob hashes the folders a fileglob pattern may list. With no folder in the pattern it
// globs each search path and its files/: only the matching files are hashed there, so that
// a playbook's folder does not count whole.
func (w *walker) fileglob(sc scope, pattern string) {
	if strings.HasPrefix(pattern, "/") || strings.HasPrefix(pattern, "~") {
		return
	}
	dir, file := path.Split(pattern)
	if dir != "" {
		for _, c := range dwimStack(w.searchPaths(sc), "files", path.Clean(dir), sc.role() != "") {
			if w.isDir(c) {
				w.addTree(c)
			}
		}
		return
	}
	for _, p := range w.searchPaths(sc) {
		for _, d := range []string{path.Join(p, "files"), p} {
			entries, err := fs.ReadDir(w.fsys, d)
			if err != nil {
				continue
			}
			w.listed(d)
			for _, e := range entries {
				if ok, _ := path.Match(file, e.Name()); ok && !e.IsDir() {
					w.files[path.Join(d, e.Name())] = true
				}
			}
		}
	}
}

// loopLookups follows with_<lookup> loops: with_fileglob, with_first_found, with_file.
func (w *walker) loopLookups(sc scope, t *yaml.Node, mod string) {
	for i := 0; i+1 < len(t.Content); i += 2 {
		k, ok := strings.CutPrefix(t.Content[i].Value, "with_")
		if !ok {
			continue
		}
		v := deref(t.Content[i+1])
		switch k {
		case "fileglob", "file", "filetree":
			w.lookupTerms(sc, v.Line, k, stringList(v))
		case "first_found":
			w.firstFound(sc, v, mod)
		}
	}
}

// firstFound adds every existing candidate of with_first_found: a list of names, or
// {files: [...], paths: [...]}. A template task searches templates/, include_vars vars/.
func (w *walker) firstFound(sc scope, v *yaml.Node, mod string) {
	dirname := "files"
	for _, d := range []string{"template", "var", "file"} {
		if strings.Contains(mod, d) {
			dirname = d + "s"
			break
		}
	}
	var names, paths []string
	collect := func(n *yaml.Node) {
		n = deref(n)
		if n.Kind == yaml.MappingNode {
			names = append(names, splitList(stringList(get(n, "files")))...)
			paths = append(paths, splitList(stringList(get(n, "paths")))...)
			return
		}
		names = append(names, stringList(n)...)
	}
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			collect(c)
		}
	} else {
		collect(v)
	}
	var terms []string
	for _, n := range names {
		if len(paths) == 0 {
			terms = append(terms, n)
		}
		for _, p := range paths {
			terms = append(terms, path.Join(p, n))
		}
	}
	for _, t := range terms {
		t = w.expand(sc, t, nil)
		if strings.Contains(t, "{{") {
			w.templatedRef(sc.file, v.Line, "with_first_found", t, w.searchDirs(sc, dirname))
			continue
		}
		for _, c := range dwimStack(w.searchPaths(sc), dirname, t, sc.role() != "") {
			if w.isFile(c) {
				w.files[c] = true
				if dirname == "templates" {
					w.template(sc, c)
				}
			}
		}
	}
}

// splitList splits first_found's comma- or semicolon-separated strings.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
			out = append(out, strings.TrimSpace(f))
		}
	}
	return out
}

// staticVars records the plain string values of a vars mapping, for expand.
func (w *walker) staticVars(into map[string]string, n *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if v := deref(n.Content[i+1]); v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
			if _, ok := into[n.Content[i].Value]; !ok {
				into[n.Content[i].Value] = v.Value
			}
		}
	}
}

// listed marks a folder whose listing (not its files) Ansible reads.
func (w *walker) listed(dir string) {
	if !w.hashedWhole(dir) {
		w.lists[dir] = true
	}
}
