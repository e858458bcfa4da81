package ansibledeps

import (
	"bufio"
	"bytes"
	"io/fs"
	"path"
	"strings"
)

// ConfigFile is where Ansible finds its configuration: Packer runs ansible-playbook with the
// repository root as working directory, and Ansible reads ./ansible.cfg there.
const ConfigFile = "ansible.cfg"

// config is what ansible.cfg points to inside the repository.
type config struct {
	rolesPath   []string
	collections []string // collections_path(s) entries
}

// pluginKeys are the [defaults] settings naming folders Ansible loads code from.
var pluginKeys = map[string]bool{
	"library": true, "module_utils": true, "action_plugins": true, "become_plugins": true,
	"cache_plugins": true, "callback_plugins": true, "cliconf_plugins": true,
	"connection_plugins": true, "doc_fragment_plugins": true, "filter_plugins": true,
	"httpapi_plugins": true, "inventory_plugins": true, "lookup_plugins": true,
	"netconf_plugins": true, "strategy_plugins": true, "terminal_plugins": true,
	"test_plugins": true, "vars_plugins": true,
}

// loadConfig reads ansible.cfg at the repository root, if any: the file is an input itself
// (hash_behaviour, inject_facts_as_vars change what a playbook does) and so is every plugin
// folder it names. Paths are relative to the file's folder; paths outside the repository
// (~/..., /usr/share/...) are the toolchain's, not the repository's.
func (w *walker) loadConfig() error {
	data, err := fs.ReadFile(w.fsys, ConfigFile)
	if err != nil {
		return nil // no ansible.cfg: Ansible's defaults, nothing in the repository
	}
	w.files[ConfigFile] = true
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if !ok || section != "defaults" {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		for _, p := range strings.Split(strings.TrimSpace(v), ":") {
			p = strings.TrimSpace(p)
			if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") || strings.Contains(p, "{{") || strings.Contains(p, "$") {
				continue
			}
			p = path.Clean(p)
			if !fs.ValidPath(p) {
				continue
			}
			switch {
			case pluginKeys[k]:
				w.addTree(p)
			case k == "roles_path":
				w.cfg.rolesPath = append(w.cfg.rolesPath, p)
			case k == "collections_path" || k == "collections_paths":
				w.cfg.collections = append(w.cfg.collections, p)
			case k == "vault_password_file" && w.isFile(p):
				w.files[p] = true
			}
		}
	}
	return sc.Err()
}
