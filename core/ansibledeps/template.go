package ansibledeps

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// jinjaRef finds {% include %}, {% import %}, {% from ... import %} and {% extends %}.
var jinjaRef = regexp.MustCompile(`\{%[-+]?\s*(?:include|import|extends|from)\s+([^\s%]+)`)

// template follows the Jinja includes of the template at p, used by a task of sc. Ansible's
// template search path is the task's search path then the template's own folder, each with
// and without templates/.
func (w *walker) template(sc scope, p string) {
	if w.templates[p] {
		return
	}
	w.templates[p] = true
	w.files[p] = true
	data, err := fs.ReadFile(w.fsys, p)
	if err != nil {
		return // the fingerprint reports an unreadable file when it hashes it
	}
	text := string(data)
	w.texts[p] = true
	if strings.Contains(text, "(") {
		w.lookups(scope{file: p, base: sc.base, roles: sc.roles, vars: sc.vars}, 1, text)
	}
	var search []string
	for _, s := range append(w.searchPaths(sc), path.Dir(p)) {
		search = appendNew(appendNew(search, path.Join(s, "templates")), s)
	}
	for _, m := range jinjaRef.FindAllStringSubmatchIndex(text, -1) {
		name := text[m[2]:m[3]]
		line := 1 + strings.Count(text[:m[0]], "\n")
		if len(name) < 2 || (name[0] != '\'' && name[0] != '"') || name[len(name)-1] != name[0] {
			// A name from a variable: the template's own folder is where such a name is
			// conventionally found, so it counts whole, unless it is a playbook's folder.
			if d := path.Dir(p); d != sc.base && d != w.topDir && d != "." {
				w.addTree(d)
			}
			w.templatedRef(p, line, "jinja include", name, []string{path.Dir(p)})
			continue
		}
		name = name[1 : len(name)-1]
		for _, s := range search {
			if c := path.Join(s, name); w.isFile(c) {
				w.template(sc, c)
			}
		}
	}
}
