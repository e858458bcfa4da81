package ansibledeps

import (
	"io/fs"
	"path"
	"strings"
)

// collection is a collection kept in the repository: NS/NAME under an ansible_collections
// folder beside the top playbook or on ansible.cfg's collections_path.
type collection struct {
	name string // ns.name
	dir  string
}

// collection returns the repository's collection name, the first one Ansible would find.
func (w *walker) collection(name string) *collection {
	if w.colls == nil {
		w.colls = []collection{} // searched once
		roots := append([]string{path.Join(w.topDir, "collections")}, w.cfg.collections...)
		for _, r := range roots {
			if path.Base(r) != "ansible_collections" {
				r = path.Join(r, "ansible_collections")
			}
			nss, _ := fs.ReadDir(w.fsys, r)
			for _, ns := range nss {
				names, _ := fs.ReadDir(w.fsys, path.Join(r, ns.Name()))
				for _, n := range names {
					if n.IsDir() {
						w.colls = append(w.colls, collection{name: ns.Name() + "." + n.Name(), dir: path.Join(r, ns.Name(), n.Name())})
					}
				}
			}
		}
	}
	for i := range w.colls {
		if w.colls[i].name == name {
			return &w.colls[i]
		}
	}
	return nil
}

// collectionOf returns the ns.name of a fully qualified name ns.name.thing.
func collectionOf(fqcn string) string {
	parts := strings.SplitN(fqcn, ".", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[0] + "." + parts[1]
}

// collectionsUsed hashes the plugins and metadata of every repository collection the playbook
// names: in a collections: keyword, a role or module's FQCN, or anywhere in a file it reads
// (a filter ns.name.f in a template). Its roles count only when a play reaches them.
func (w *walker) collectionsUsed() error {
	w.collection("") // discover
	if len(w.colls) == 0 {
		return nil
	}
	for p := range w.texts {
		data, err := fs.ReadFile(w.fsys, p)
		if err != nil {
			continue
		}
		for _, c := range w.colls {
			if !w.used[c.name] && strings.Contains(string(data), c.name+".") {
				w.used[c.name] = true
			}
		}
	}
	for _, c := range w.colls {
		if !w.used[c.name] {
			continue
		}
		for _, d := range []string{"plugins", "meta"} {
			w.addTree(path.Join(c.dir, d))
		}
		for _, f := range []string{"galaxy.yml", "MANIFEST.json", "FILES.json"} {
			if p := path.Join(c.dir, f); w.isFile(p) {
				w.files[p] = true
			}
		}
	}
	return nil
}
