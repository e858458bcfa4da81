package ansibletrace

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Read
		ok   bool
	}{
		{"bare", `amichain-ansible-read: {"kind": "file", "path": "ansible/site.yml"}`, Read{"ansible/site.yml", File}, true},
		{"relayed by Packer", `    amazon-ebs.web: amichain-ansible-read: {"kind": "dir", "path": "ansible/filter_plugins"}`, Read{"ansible/filter_plugins", Dir}, true},
		{"not a marker", `    amazon-ebs.web: TASK [debug] ****`, Read{}, false},
		{"outside the repository", `amichain-ansible-read: {"kind": "file", "path": "../etc/passwd"}`, Read{}, false},
		{"absolute", `amichain-ansible-read: {"kind": "file", "path": "/etc/passwd"}`, Read{}, false},
		{"unknown kind", `amichain-ansible-read: {"kind": "socket", "path": "x"}`, Read{}, false},
		{"truncated", `amichain-ansible-read: {"kind": "file", "pa`, Read{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse(tc.line)
			assert.Check(t, is.Equal(ok, tc.ok))
			assert.Check(t, is.DeepEqual(got, tc.want))
		})
	}
}

func TestReadsOnceEach(t *testing.T) {
	var rs Reads
	for _, l := range []string{
		`amichain-ansible-read: {"kind": "file", "path": "b"}`,
		`x amichain-ansible-read: {"kind": "file", "path": "a"}`,
		`amichain-ansible-read: {"kind": "dir", "path": "a"}`,
		`amichain-ansible-read: {"kind": "file", "path": "b"}`, // a forked worker reports again
		`ok: [localhost]`,
	} {
		rs.Line(l)
	}
	assert.DeepEqual(t, rs.List(), []Read{{"a", File}, {"a", Dir}, {"b", File}})
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hook")
	env, err := Install(dir, []string{"HOME=/root", "PYTHONPATH=/opt/lib"})
	assert.NilError(t, err)
	assert.DeepEqual(t, env, []string{"PYTHONPATH=" + dir + ":/opt/lib", "PYTHONDONTWRITEBYTECODE=1"})
	data, err := os.ReadFile(filepath.Join(dir, HookFile))
	assert.NilError(t, err)
	assert.DeepEqual(t, data, Hook())
}
