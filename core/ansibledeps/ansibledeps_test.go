package ansibledeps

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
)

func TestFilesFixture(t *testing.T) {
	got, err := Files(os.DirFS("testdata/repo"), "ansible/site.yml")
	assert.NilError(t, err)
	golden.Assert(t, strings.Join(got, "\n")+"\n", "site.files.golden")

	// The golden file is the whole answer; these name why each entry is (or is not) there.
	has := map[string]bool{}
	for _, f := range got {
		has[f] = true
	}
	tests := []struct {
		construct string
		file      string
		want      bool
	}{
		{"the playbook itself", "ansible/site.yml", true},
		{"import_playbook", "ansible/plays/monitoring.yml", true},
		{"role of an imported playbook, from roles/ next to it", "ansible/plays/roles/exporter/tasks/main.yml", true},
		{"group_vars next to the playbook", "ansible/group_vars/all.yml", true},
		{"vars_files", "ansible/vars/common.yml", true},
		{"vars_files alternatives: first existing", "ansible/vars/defaults.yml", true},
		{"vars file nobody names", "ansible/vars/unused.yml", false},
		{"roles: string form, templates/", "ansible/roles/common/templates/timezone.j2", true},
		{"roles: {role: x} form with vars, files/", "ansible/roles/nginx/files/index.html", true},
		{"roles: {name: x} form, library/", "ansible/roles/app/library/app_facts.py", true},
		{"all of a used role's tasks/", "ansible/roles/nginx/tasks/unreferenced.yml", true},
		{"role handlers/", "ansible/roles/nginx/handlers/main.yml", true},
		{"meta dependencies", "ansible/roles/base-packages/vars/main.yml", true},
		{"pre_tasks import_tasks", "ansible/tasks/pre.yml", true},
		{"block include_tasks file: form", "ansible/tasks/setup.yml", true},
		{"include relative to the including file", "ansible/tasks/nested/more.yml", true},
		{"rescue ansible.builtin.include_role", "ansible/roles/rescue/tasks/main.yml", true},
		{"always import_role tasks_from", "ansible/roles/logging/tasks/ship.yml", true},
		{"role imported from a tasks_from file", "ansible/roles/shipper/defaults/main.yml", true},
		{"include_tasks in a role, relative to its tasks/", "ansible/roles/app/tasks/install.yml", true},
		{"include_role from inside a role", "ansible/roles/helper/tasks/main.yml", true},
		{"post_tasks FQCN import_tasks", "ansible/tasks/post.yml", true},
		{"handlers include_tasks", "ansible/handlers/restart.yml", true},
		{"role the playbook does not use", "ansible/roles/unused/tasks/main.yml", false},
		{"role README", "ansible/roles/common/README.md", false},
		{"role tests/", "ansible/roles/common/tests/test.yml", false},
	}
	for _, tc := range tests {
		assert.Check(t, has[tc.file] == tc.want, "%s: %s: included=%v, want %v", tc.construct, tc.file, has[tc.file], tc.want)
	}
}

func TestFilesSmall(t *testing.T) {
	tests := []struct {
		name     string
		fsys     fs.FS
		playbook string
		want     []string
	}{
		{
			name:     "imported playbook alone resolves roles next to itself",
			fsys:     os.DirFS("testdata/repo"),
			playbook: "ansible/plays/monitoring.yml",
			want: []string{
				"ansible/plays/monitoring.yml",
				"ansible/plays/roles/exporter/files/node_exporter",
				"ansible/plays/roles/exporter/tasks/main.yml",
			},
		},
		{
			name: "play-level include is import_playbook",
			fsys: fstest.MapFS{
				"site.yml": file("- include: web.yml\n"),
				"web.yml":  file("- hosts: all\n  tasks: []\n"),
			},
			playbook: "site.yml",
			want:     []string{"site.yml", "web.yml"},
		},
		{
			name: "empty task files and role without tasks",
			fsys: fstest.MapFS{
				"web.yml":                   file("- hosts: all\n  roles: [r]\n  tasks:\n"),
				"roles/r/meta/main.yml":     file(""),
				"roles/r/defaults/main.yml": file("x: 1\n"),
				"roles/r/molecule/test.yml": file("not read by Ansible\n"),
			},
			playbook: "web.yml",
			want:     []string{"roles/r/defaults/main.yml", "roles/r/meta/main.yml", "web.yml"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Files(tc.fsys, tc.playbook)
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestFilesErrors(t *testing.T) {
	tests := []struct {
		name     string
		fsys     fstest.MapFS
		playbook string   // default ansible/web.yml
		wantErr  []string // every fragment must appear
	}{
		{
			name: "missing role",
			fsys: fstest.MapFS{
				"ansible/web.yml":                     file("- hosts: all\n  roles:\n    - common\n    - nginx\n"),
				"ansible/roles/common/tasks/main.yml": file("- debug: {msg: hi}\n"),
			},
			wantErr: []string{"ansible/web.yml:4", `role "nginx" not found`, "ansible/roles/nginx", "add the role"},
		},
		{
			name: "missing role dependency",
			fsys: fstest.MapFS{
				"ansible/web.yml":                    file("- hosts: all\n  roles: [common]\n"),
				"ansible/roles/common/meta/main.yml": file("dependencies:\n  - role: gone\n"),
			},
			wantErr: []string{"ansible/roles/common/meta/main.yml:2", `role "gone" not found`},
		},
		{
			name: "missing task file in a playbook",
			fsys: fstest.MapFS{
				"ansible/web.yml": file("- hosts: all\n  tasks:\n    - import_tasks: tasks/nope.yml\n"),
			},
			wantErr: []string{"ansible/web.yml:3", `"tasks/nope.yml": file not found`, "ansible/tasks/nope.yml", "fix the path"},
		},
		{
			name: "missing task file in a role",
			fsys: fstest.MapFS{
				"ansible/web.yml":                  file("- hosts: all\n  roles: [app]\n"),
				"ansible/roles/app/tasks/main.yml": file("- name: x\n  ansible.builtin.include_tasks:\n    file: install.yml\n"),
			},
			wantErr: []string{"ansible/roles/app/tasks/main.yml:3", `include_tasks "install.yml": file not found`, "ansible/roles/app/tasks/install.yml"},
		},
		{
			name: "missing tasks_from",
			fsys: fstest.MapFS{
				"ansible/web.yml":                  file("- hosts: all\n  tasks:\n    - import_role: {name: app, tasks_from: extra}\n"),
				"ansible/roles/app/tasks/main.yml": file("[]\n"),
			},
			wantErr: []string{"ansible/web.yml:3", `tasks_from "extra": file not found`, "ansible/roles/app/tasks/extra.yml"},
		},
		{
			name: "missing vars file",
			fsys: fstest.MapFS{
				"ansible/web.yml": file("- hosts: all\n  vars_files: [vars/x.yml]\n"),
			},
			wantErr: []string{"ansible/web.yml:2", "vars_files: not found: ansible/vars/x.yml"},
		},
		{
			name: "missing imported playbook",
			fsys: fstest.MapFS{
				"ansible/site.yml": file("- import_playbook: web.yml\n"),
			},
			playbook: "ansible/site.yml",
			wantErr:  []string{"ansible/site.yml:1", `import_playbook "web.yml": file not found`},
		},
		{
			name: "path escaping the repository",
			fsys: fstest.MapFS{
				"ansible/site.yml": file("- import_playbook: ../../elsewhere.yml\n"),
			},
			playbook: "ansible/site.yml",
			wantErr:  []string{"ansible/site.yml:1", "outside the repository"},
		},
		{
			name: "broken YAML in a role",
			fsys: fstest.MapFS{
				"ansible/web.yml":                  file("- hosts: all\n  roles: [app]\n"),
				"ansible/roles/app/tasks/main.yml": file("- name: ok\n  debug: {msg: fine}\n- name: broken\n  debug: msg: [\n"),
			},
			wantErr: []string{"ansible/roles/app/tasks/main.yml: yaml: line 4", "fix the YAML"},
		},
		{
			name: "playbook that is not a list",
			fsys: fstest.MapFS{
				"ansible/web.yml": file("hosts: all\n"),
			},
			wantErr: []string{"ansible/web.yml:1: a playbook is a list of plays"},
		},
		{
			name:    "missing playbook",
			fsys:    fstest.MapFS{},
			wantErr: []string{"read ansible/web.yml"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			playbook := tc.playbook
			if playbook == "" {
				playbook = "ansible/web.yml"
			}
			got, err := Files(tc.fsys, playbook)
			assert.Assert(t, err != nil, "want an error, got files %v", got)
			assert.Assert(t, got == nil)
			for _, frag := range tc.wantErr {
				assert.ErrorContains(t, err, frag)
			}
		})
	}
}

func TestTemplated(t *testing.T) {
	fsys := fstest.MapFS{
		"ansible/web.yml": file(`- hosts: all
  roles:
    - common
    - "{{ web_role }}"
  tasks:
    - include_tasks: "{{ ansible_os_family }}.yml"
    - include_tasks: "tasks/{{ ansible_os_family }}.yml"
    - template: {src: "{{ conf }}", dest: /etc/x}
`),
		"ansible/roles/common/tasks/main.yml":   file("- include_tasks: \"{{ ansible_os_family }}.yml\"\n"),
		"ansible/roles/common/tasks/Debian.yml": file("- debug: {msg: hi}\n"),
		"ansible/tasks/Debian.yml":              file("- include_role: {name: os}\n"),
		"ansible/roles/os/tasks/main.yml":       file("- debug: {msg: hi}\n"),
		"ansible/roles/other/tasks/main.yml":    file("- debug: {msg: hi}\n"),
	}
	d, err := Analyze(fsys, "ansible/web.yml")
	assert.NilError(t, err)
	// In a role, or under a folder hashed whole (tasks/), a templated path is covered; a task
	// file of such a folder is followed (it reaches role os), other roles stay out.
	assert.DeepEqual(t, d.Files, []string{
		"ansible/roles/common/tasks/Debian.yml", "ansible/roles/common/tasks/main.yml",
		"ansible/roles/os/tasks/main.yml", "ansible/tasks/Debian.yml", "ansible/web.yml",
	})
	refs := func(e error) []string {
		var tmpl *TemplatedError
		if e == nil {
			return nil
		}
		assert.Assert(t, errors.As(e, &tmpl), "want a *TemplatedError, got %v", e)
		var out []string
		for _, r := range tmpl.Refs {
			out = append(out, fmt.Sprintf("%s:%d %s %s", r.File, r.Line, r.What, r.Value))
		}
		return out
	}
	all := []string{
		"ansible/web.yml:4 roles {{ web_role }}",
		"ansible/web.yml:6 include_tasks {{ ansible_os_family }}.yml",
		"ansible/web.yml:8 template src {{ conf }}",
	}
	tests := []struct {
		name   string
		inputs []string
		want   []string
	}{
		{name: "no inputs", want: all},
		{name: "an input elsewhere covers nothing", inputs: []string{"packer/extra.pkr.hcl"}, want: all},
		{name: "a role folder covers the role", inputs: []string{"ansible/roles/web"}, want: all[1:]},
		{name: "a file beside the playbook covers the rest", inputs: []string{"ansible/roles/web", "ansible/Debian.yml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, refs(d.Check(tc.inputs)), tc.want)
		})
	}
	assert.Error(t, d.Check(nil), `ansible/web.yml:4: roles "{{ web_role }}" is templated and cannot be followed statically; `+
		`ansible/web.yml:6: include_tasks "{{ ansible_os_family }}.yml" is templated and cannot be followed statically; `+
		`ansible/web.yml:8: template src "{{ conf }}" is templated and cannot be followed statically: `+
		`use a static path, or list the files it can use in the image's inputs in amichain.yaml`)
}
