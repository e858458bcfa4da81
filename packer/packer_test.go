package packer_test

import (
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/testtool"
)

const template = "packer/image.pkr.hcl"

// TestValidateEveryImage runs the real packer init and validate for every image of the tree,
// with the variables amichain passes.
func TestValidateEveryImage(t *testing.T) {
	p := newPacker(t)
	tr, err := tree.Load(os.DirFS(p.root), tree.DefaultPath)
	assert.NilError(t, err)

	for _, img := range tr.Images {
		t.Run(img.Name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, img.Template, template)
			vars := map[string]string{
				"image_name":  img.Name,
				"parent_ami":  "ami-0123456789abcdef0",
				"fingerprint": "0123456789abcdef0123",
				"git_commit":  "deadbeef",
				"playbook":    img.Playbook,
			}
			if img.Verify != "" {
				vars["verify_playbook"] = img.Verify
			}
			for k, v := range img.Vars {
				vars[k] = v
			}
			out, err := p.run(t, validateArgs(vars)...)
			assert.NilError(t, err, out)
			assert.Check(t, is.Contains(out, "The configuration is valid."))
		})
	}
}

// TestValidateRejects shows that missing or bad input fails validation with a message naming
// the variable.
func TestValidateRejects(t *testing.T) {
	p := newPacker(t)
	good := map[string]string{
		"image_name":  "web",
		"parent_ami":  "ami-0123456789abcdef0",
		"fingerprint": "0123456789abcdef0123",
		"playbook":    "ansible/web.yml",
	}
	for _, tc := range []struct {
		name    string
		set     map[string]string
		unset   string
		wantOut []string
	}{
		{name: "no image_name", unset: "image_name", wantOut: []string{`Unset variable "image_name"`}},
		{name: "no parent_ami", unset: "parent_ami", wantOut: []string{`Unset variable "parent_ami"`}},
		{name: "no fingerprint", unset: "fingerprint", wantOut: []string{`Unset variable "fingerprint"`}},
		{name: "no playbook", unset: "playbook", wantOut: []string{`Unset variable "playbook"`}},
		{
			name:    "parent_ami not an AMI id",
			set:     map[string]string{"parent_ami": "debian-12"},
			wantOut: []string{"The parent_ami must be an AMI id (ami-...)."},
		},
		{
			name:    "image_name with capitals",
			set:     map[string]string{"image_name": "Web"},
			wantOut: []string{"The image_name must be an image name from amichain.yaml"},
		},
		{
			name:    "verify playbook missing",
			set:     map[string]string{"verify_playbook": "ansible/verify/nope.yml"},
			wantOut: []string{"ansible/verify/nope.yml is invalid", "no such file or directory"},
		},
		{
			name:    "playbook missing",
			set:     map[string]string{"playbook": "ansible/nope.yml"},
			wantOut: []string{"ansible/nope.yml is invalid", "no such file or directory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{}
			for k, v := range good {
				if k != tc.unset {
					vars[k] = v
				}
			}
			for k, v := range tc.set {
				vars[k] = v
			}
			out, err := p.run(t, validateArgs(vars)...)
			assert.Check(t, err != nil, "packer validate passed, want a failure:\n%s", out)
			// Packer wraps its messages to the terminal width.
			flat := strings.Join(strings.Fields(out), " ")
			for _, want := range tc.wantOut {
				assert.Check(t, is.Contains(flat, want))
			}
		})
	}
}

func TestFormatted(t *testing.T) {
	p := newPacker(t)
	out, err := p.run(t, "fmt", "-check", "-diff", template)
	assert.NilError(t, err, "run `packer fmt %s`:\n%s", template, out)
}

type packer struct {
	bin, root string
	env       []string
}

// newPacker finds packer and the installed plugins, then runs packer init, which must work
// offline because .ci/install-tools installed the pinned plugins.
func newPacker(t *testing.T) packer {
	t.Helper()
	p := packer{
		bin:  testtool.Find(t, "packer"),
		root: testtool.Root(t),
		env: []string{
			"PACKER_PLUGIN_PATH=" + testtool.PluginDir(t),
			"PACKER_CONFIG_DIR=" + t.TempDir(),
			"CHECKPOINT_DISABLE=1",
			// A proxy that refuses every connection: init must not need the network.
			"HTTPS_PROXY=http://127.0.0.1:1",
			"HTTP_PROXY=http://127.0.0.1:1",
		},
	}
	out, err := p.run(t, "init", template)
	assert.NilError(t, err, "packer init (offline) failed: the installed plugins must match required_plugins; run .ci/install-tools\n%s", out)
	return p
}

// run runs packer in the repository root and returns its combined output.
func (p packer) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), p.bin, args...)
	cmd.Dir = p.root
	cmd.Env = slices.Concat(os.Environ(), p.env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func validateArgs(vars map[string]string) []string {
	args := []string{"validate"}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		args = append(args, "-var", k+"="+vars[k])
	}
	return append(args, template)
}
