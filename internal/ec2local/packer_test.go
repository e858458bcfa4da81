package ec2local_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/sshd"
	"github.com/amichain/amichain/internal/testtool"
)

const upstreamAMI = "ami-0000000000000deb1"

// TestPackerBuild runs the real Packer and amazon plugin against the fake, with a real sshd
// standing in for the instance.
func TestPackerBuild(t *testing.T) {
	packer, plugins := testtool.Find(t, "packer"), testtool.PluginDir(t)
	ssh := sshd.StartTest(t)
	tests := []struct {
		name      string
		sourceAMI string
		existing  string // an AMI of ours already has this name
		wantErr   string
	}{
		{name: "builds an AMI", sourceAMI: upstreamAMI},
		{name: "reused AMI name", sourceAMI: upstreamAMI, existing: "ec2local-test-image", wantErr: "is used by an existing AMI"},
		{name: "unknown source AMI", sourceAMI: "ami-00000000000000404", wantErr: "InvalidAMIID.NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{
				{ID: upstreamAMI, Name: "debian-12-amd64-20250101", OwnerID: "136693071363"},
			}})
			assert.NilError(t, err)
			defer srv.Close()
			if tc.existing != "" {
				srv.AddImage(ec2local.Image{Name: tc.existing})
			}
			marker := filepath.Join(t.TempDir(), "marker")
			out, err := runPacker(t, packer, plugins, map[string]string{
				"ec2_endpoint": srv.URL(), "source_ami": tc.sourceAMI, "ami_name": "ec2local-test-image",
				"subnet_id": ec2local.SubnetID, "security_group_id": ec2local.SecurityGroupID,
				"ssh_username": ssh.User, "ssh_port": fmt.Sprint(ssh.Port), "ssh_private_key_file": ssh.PrivateKeyPath,
				"marker_file": marker,
			})
			t.Logf("EC2 calls: %v", srv.Calls())
			if tc.wantErr != "" {
				assert.Assert(t, err != nil, "packer succeeded: %s", out)
				assert.Assert(t, is.Contains(out, tc.wantErr))
				assert.Equal(t, len(srv.Launches()), 0, "no instance for a build that fails validation")
				return
			}
			assert.NilError(t, err, out)

			images := srv.Images()
			assert.Equal(t, len(images), 1)
			ami := images[0]
			assert.Equal(t, ami.Name, "ec2local-test-image")
			assert.Equal(t, ami.SourceImage, upstreamAMI)
			assert.DeepEqual(t, ami.Tags, map[string]string{"Name": "ec2local-test", "source-ami": upstreamAMI})
			assert.Assert(t, is.Contains(out, ",artifact,0,id,us-east-1:"+ami.ID))

			launches := srv.Launches()
			assert.Equal(t, len(launches), 1)
			assert.Equal(t, launches[0].ImageID, upstreamAMI)
			assert.Equal(t, launches[0].InstanceID, ami.SourceInstance)
			assert.Assert(t, slices.Contains(srv.Calls(), "TerminateInstances"), "the instance is cleaned up")

			got, err := os.ReadFile(marker)
			assert.NilError(t, err, "the provisioner did not run over SSH")
			assert.Equal(t, string(got), "provisioned\n")
		})
	}
}

func runPacker(t *testing.T, packer, plugins string, vars map[string]string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-machine-readable"}
	for k, v := range vars {
		args = append(args, "-var", k+"="+v)
	}
	cmd := exec.CommandContext(ctx, packer, append(args, filepath.Join("testdata", "minimal.pkr.hcl"))...)
	home := t.TempDir()
	// No real AWS settings leak in; the fake does not check these dummy keys.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
	cmd.Env = append(cmd.Env, "PACKER_PLUGIN_PATH="+plugins, "CHECKPOINT_DISABLE=1",
		"PACKER_CONFIG_DIR="+home, "PACKER_CACHE_DIR="+filepath.Join(home, "cache"),
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=ec2local-dummy-secret", "AWS_EC2_METADATA_DISABLED=true")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
