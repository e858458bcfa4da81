package prune_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/packer"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/prune"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/run"
	"github.com/amichain/amichain/core/ssmparam"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/s3test"
	"github.com/amichain/amichain/internal/sshd"
	"github.com/amichain/amichain/internal/ssmlocal"
	"github.com/amichain/amichain/internal/testtool"
)

const upstreamAMI = "ami-0000000000000deb1"

const tree = `upstream: {ami: ` + upstreamAMI + `}
defaults:
  encrypt_boot: true
  kms_key_id: alias/amichain
  region_kms_key_ids: {eu-west-1: alias/amichain-eu}
  ami_users: ["111122223333"]
  ami_org_arns: ["arn:aws:organizations::111122223333:organization/o-exampleorg1"]
  ami_ou_arns: ["arn:aws:organizations::111122223333:ou/o-exampleorg1/ou-ab12-exampleou"]
  snapshot_users: ["444455556666"]
  deprecate_at: 2160h
  tags: {team: platform}
images:
  - {name: base, template: packer/image.pkr.hcl, playbook: ansible/base.yml}
  - {name: web, parent: base, template: packer/image.pkr.hcl, playbook: ansible/web.yml}
`

func playbook(version string) string {
	return "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: " + version + "\n      ansible.builtin.ping:\n"
}

// env is a repository of two images built with the real Packer, amazon plugin and Ansible
// against the local EC2 API (a loopback sshd is every instance), records in S3 and the SSM
// stand-in.
type env struct {
	repo  string
	ec2   *ec2local.Server
	ssm   *ssmlocal.Server
	store *record.Store
	ec2c  *ec2.Client
	run   run.Options
	log   *bytes.Buffer
}

func start(t *testing.T) *env {
	packerBin, plugins := testtool.Find(t, "packer"), testtool.PluginDir(t)
	testtool.Find(t, "ansible-playbook")
	ssh := sshd.StartTest(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDPRUNETEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "prune-test-dummy")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := &env{repo: t.TempDir(), log: &bytes.Buffer{}}
	var err error
	e.ec2, err = ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{{ID: upstreamAMI, Name: "debian-12", OwnerID: "136693071363"}}})
	assert.NilError(t, err)
	t.Cleanup(func() { e.ec2.Close() })
	e.ssm, err = ssmlocal.Start(t.Context(), ssmlocal.Options{ImageExists: func(region, id string) bool {
		return slices.ContainsFunc(e.ec2.AllImages(), func(i ec2local.Image) bool { return i.ID == id && i.Region == region })
	}})
	assert.NilError(t, err)
	t.Cleanup(func() { e.ssm.Close() })
	s3 := s3test.StartFake(t)
	e.store = record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket, Prefix: "amichain"})
	e.ec2c, err = upstream.NewClient(t.Context(), "us-east-1", e.ec2.URL(), nil)
	assert.NilError(t, err)

	root := testtool.Root(t)
	assert.NilError(t, os.CopyFS(filepath.Join(e.repo, "packer"), os.DirFS(filepath.Join(root, "packer"))))
	pins, err := os.ReadFile(filepath.Join(root, "toolchain.env"))
	assert.NilError(t, err)
	e.write(t, "toolchain.env", string(pins))
	e.write(t, "amichain.yaml", tree)
	e.write(t, "ansible/base.yml", playbook("base-1"))
	e.write(t, "ansible/web.yml", playbook("web-1"))

	home := t.TempDir()
	runner := &packer.Runner{
		Exec: packer.Host{Packer: packerBin, Dir: e.repo, Grace: time.Minute,
			Env: []string{"PACKER_PLUGIN_PATH=" + plugins, "PACKER_CONFIG_DIR=" + home, "PACKER_CACHE_DIR=" + filepath.Join(home, "cache"),
				// The stand-in is ready at once: poll it often.
				"AWS_POLL_DELAY_SECONDS=1"}},
		Vars: map[string]string{
			"ec2_endpoint": e.ec2.URL(), "subnet_id": ec2local.SubnetID, "security_group_id": ec2local.SecurityGroupID,
			"ssh_username": ssh.User, "ssh_port": fmt.Sprint(ssh.Port), "ssh_private_key_file": ssh.PrivateKeyPath,
			"copy_regions": `["eu-west-1"]`,
		},
		Region: "us-east-1", Log: e.log,
	}
	ssmURL := e.ssm.URL()
	e.run = run.Options{Source: os.DirFS(e.repo), Records: e.store, EC2: e.ec2c, Builder: runner,
		Params: func(_ context.Context, region string) (ssmparam.API, error) {
			return ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(ssmURL),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDPRUNETEST", "prune-test-dummy", "")}), nil
		}}
	return e
}

func (e *env) write(t *testing.T, rel, text string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(filepath.Join(e.repo, rel)), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(e.repo, rel), []byte(text), 0o644))
}

// build runs build-all (or only one image and its ancestors) and returns each image's AMIs.
func (e *env) build(t *testing.T, only string) map[string]build.Outcome {
	t.Helper()
	r, err := run.Load(t.Context(), e.run)
	assert.NilError(t, err)
	sum, err := r.Build(t.Context(), only)
	assert.NilError(t, err, "%s\npacker log:\n%s", sum, e.log)
	t.Logf("build:\n%s", sum)
	out := map[string]build.Outcome{}
	for _, o := range sum.Outcomes {
		out[o.Image] = o
	}
	return out
}

// checkSSM asserts that every image's parameter names its current AMI in every region.
func (e *env) checkSSM(t *testing.T, images ...string) {
	t.Helper()
	for _, image := range images {
		cur, err := e.store.Current(t.Context(), image)
		assert.NilError(t, err)
		for region, ami := range cur.AMIs {
			p, ok := e.ssm.Get(region, "/amichain/"+image)
			assert.Assert(t, ok, "no parameter for %s in %s", image, region)
			assert.Check(t, is.Equal(p.Value, ami), "%s in %s", image, region)
			assert.Check(t, is.Equal(p.DataType, "aws:ec2:image"))
		}
	}
}

func (e *env) clients() prune.Clients {
	return func(ctx context.Context, region string) (prune.EC2, error) {
		return upstream.NewClient(ctx, region, e.ec2.URL(), nil)
	}
}

// TestBuildRebuildPrune builds base and web, rebuilds web three times, reverts it, rebuilds
// base alone, and prunes: a dry run lists exactly what nothing needs, --apply removes it, the
// base the current web was built from and the AMIs in use stay, and a pruned build is never
// reused.
func TestBuildRebuildPrune(t *testing.T) {
	e := start(t)
	first := e.build(t, "")
	base1, web1 := first["base"].AMIs, first["web"].AMIs
	assert.Equal(t, first["web"].Status, build.Built)
	e.checkSSM(t, "base", "web")
	checkSettings(t, e.ec2)

	webs, fps := []map[string]string{web1}, []string{first["web"].Fingerprint}
	for _, v := range []string{"web-2", "web-3", "web-4"} {
		e.write(t, "ansible/web.yml", playbook(v))
		out := e.build(t, "")
		assert.Equal(t, out["web"].Status, build.Built, v)
		assert.Equal(t, out["base"].Status, build.UpToDate)
		webs, fps = append(webs, out["web"].AMIs), append(fps, out["web"].Fingerprint)
		e.checkSSM(t, "web")
	}
	// Revert to web-2: its AMI is reused and published again.
	e.write(t, "ansible/web.yml", playbook("web-2"))
	out := e.build(t, "")
	assert.Equal(t, out["web"].Status, build.Reused)
	assert.DeepEqual(t, out["web"].AMIs, webs[1])
	e.checkSSM(t, "web")
	// A parameter someone overwrote is repaired by the next plan.
	e.ssm.Set("eu-west-1", ssmlocal.Parameter{Name: "/amichain/web", Type: "String", DataType: "aws:ec2:image", Value: webs[3]["eu-west-1"]})
	r, err := run.Load(t.Context(), e.run)
	assert.NilError(t, err)
	p, err := r.Plan(t.Context(), "")
	assert.NilError(t, err)
	assert.Check(t, is.Contains(p.String(), "repaired SSM parameter /amichain/web in eu-west-1 (it said "+webs[3]["eu-west-1"]+")"))
	e.checkSSM(t, "web")

	// base changes; only base is rebuilt: the current web is still built from base1.
	e.write(t, "ansible/base.yml", playbook("base-2"))
	base2 := e.build(t, "base")["base"].AMIs
	e.checkSSM(t, "base")

	// Something still launches web1 (an instance) and web3 (a launch template), in us-east-1.
	e.ec2.Launch("us-east-1", web1["us-east-1"])
	e.ec2.AddLaunchTemplate("us-east-1", "web-canary", webs[2]["us-east-1"])

	tr, err := run.Load(t.Context(), e.run)
	assert.NilError(t, err)
	opts := prune.Options{Tree: tr.Tree, Regions: []string{"us-east-1", "eu-west-1"}, KeepLast: 0, Now: time.Now()}
	dry, err := prune.Prune(t.Context(), e.clients(), e.store, opts)
	assert.NilError(t, err)
	t.Logf("dry run:\n%s", dry)
	want := []string{
		"base eu-west-1 " + base1["eu-west-1"],
		"web eu-west-1 " + web1["eu-west-1"],
		"web eu-west-1 " + webs[2]["eu-west-1"],
		"web eu-west-1 " + webs[3]["eu-west-1"],
		"web us-east-1 " + webs[3]["us-east-1"],
	}
	sort.Strings(want)
	assert.DeepEqual(t, deleted(dry), want)
	keep := map[string]string{}
	for _, d := range dry.Decisions {
		keep[d.Region+" "+d.AMI] = strings.Join(d.Keep, "; ")
	}
	assert.Check(t, is.Contains(keep["us-east-1 "+base1["us-east-1"]], "current web built from it"))
	assert.Check(t, is.Contains(keep["us-east-1 "+base2["us-east-1"]], "current"))
	assert.Check(t, is.Contains(keep["eu-west-1 "+webs[1]["eu-west-1"]], "current"))
	assert.Check(t, is.Contains(keep["us-east-1 "+web1["us-east-1"]], "used by instance"))
	assert.Check(t, is.Contains(keep["us-east-1 "+webs[2]["us-east-1"]], "used by launch template web-canary"))
	assert.Check(t, is.Contains(dry.String(), "would delete 5 AMIs and 5 snapshots (40 GiB)"))
	var wantSnaps []string
	for _, d := range dry.Deleted() {
		assert.Equal(t, len(d.Snapshots), 1, d.AMI)
		wantSnaps = append(wantSnaps, d.Snapshots...)
	}
	before := len(e.ec2.AllImages())
	deregs := len(e.ec2.Requests("DeregisterImage"))
	assert.Equal(t, len(e.ec2.AllImages()), before, "a dry run removes nothing")

	opts.Apply = true
	applied, err := prune.Prune(t.Context(), e.clients(), e.store, opts)
	assert.NilError(t, err)
	assert.NilError(t, applied.Err())
	t.Logf("apply:\n%s", applied)
	assert.DeepEqual(t, deleted(applied), want)
	assert.Equal(t, len(e.ec2.Requests("DeregisterImage"))-deregs, len(want))
	for _, img := range e.ec2.AllImages() {
		assert.Check(t, !slices.Contains(want, img.Tags["amichain:image"]+" "+img.Region+" "+img.ID), "still registered: %s", img.ID)
	}
	for _, s := range e.ec2.Snapshots() {
		assert.Check(t, !slices.Contains(wantSnaps, s.ID), "snapshot %s not deleted", s.ID)
	}
	again, err := prune.Prune(t.Context(), e.clients(), e.store, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(again.Deleted(), 0))

	// The index entries of pruned builds are marked: never reused, never made current again.
	for _, i := range []int{0, 3} {
		ix, err := e.store.ByFingerprint(t.Context(), "web", fps[i])
		assert.NilError(t, err)
		assert.Assert(t, ix.PrunedAt != nil, "web build %d", i+1)
		assert.ErrorContains(t, e.store.Save(t.Context(), *ix), "was pruned on")
	}
	for _, i := range []int{1, 2} { // current, and kept by the launch template (though its copy went)
		ix, err := e.store.ByFingerprint(t.Context(), "web", fps[i])
		assert.NilError(t, err)
		assert.Check(t, (ix.PrunedAt != nil) == (i == 2), "web build %d", i+1)
	}
	// Reverting base to base-1, whose eu-west-1 copy was pruned, plans a build, not a reuse.
	e.write(t, "ansible/base.yml", playbook("base-1"))
	e.write(t, "ansible/web.yml", playbook("web-1"))
	r, err = run.Load(t.Context(), e.run)
	assert.NilError(t, err)
	p, err = r.Plan(t.Context(), "")
	assert.NilError(t, err)
	t.Logf("plan:\n%s", p)
	assert.Check(t, is.Equal(p.Steps[0].Status, plan.Stale))
	assert.Check(t, is.Contains(strings.Join(p.Steps[0].Reasons, "; "), "not reusing "+base1["us-east-1"]+", built from these inputs before: pruned on"))
	assert.Check(t, is.Equal(p.Steps[1].Status, plan.Stale))
}

func deleted(r prune.Report) []string {
	var out []string
	for _, d := range r.Deleted() {
		out = append(out, d.Image+" "+d.Region+" "+d.AMI)
	}
	sort.Strings(out)
	return out
}

// checkSettings asserts that amichain.yaml's settings reached Packer: the calls it made.
func checkSettings(t *testing.T, srv *ec2local.Server) {
	t.Helper()
	var copies []string
	for _, r := range srv.Requests("CopyImage") {
		copies = append(copies, r.Region+" encrypted="+r.Params.Get("Encrypted")+" key="+r.Params.Get("KmsKeyId"))
	}
	// Per image: the copy to eu-west-1 and the encrypted copy of the build region.
	sort.Strings(copies)
	assert.DeepEqual(t, copies, []string{
		"eu-west-1 encrypted=true key=alias/amichain-eu", "eu-west-1 encrypted=true key=alias/amichain-eu",
		"us-east-1 encrypted=true key=alias/amichain", "us-east-1 encrypted=true key=alias/amichain",
	})
	perms := map[string]bool{}
	for _, r := range srv.Requests("ModifyImageAttribute") {
		for k, v := range r.Params {
			if strings.HasPrefix(k, "LaunchPermission.Add.") || k == "ImdsSupport.Value" {
				perms[r.Region+" "+k+"="+v[0]] = true
			}
		}
	}
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		for _, want := range []string{"LaunchPermission.Add.1.UserId=111122223333",
			"LaunchPermission.Add.1.OrganizationArn=arn:aws:organizations::111122223333:organization/o-exampleorg1",
			"LaunchPermission.Add.1.OrganizationalUnitArn=arn:aws:organizations::111122223333:ou/o-exampleorg1/ou-ab12-exampleou",
			"ImdsSupport.Value=v2.0"} {
			assert.Check(t, perms[region+" "+want], "%s %s not requested; got %v", region, want, perms)
		}
	}
	snapUsers := 0
	for _, r := range srv.Requests("ModifySnapshotAttribute") {
		if r.Params.Get("CreateVolumePermission.Add.1.UserId") == "444455556666" {
			snapUsers++
		}
	}
	assert.Check(t, snapUsers >= 4, "snapshot_users: %d ModifySnapshotAttribute calls", snapUsers)
	for _, img := range srv.Images() {
		if img.Tags["amichain:image"] == "" {
			continue
		}
		assert.Check(t, img.Encrypted, img.ID)
		assert.Check(t, is.Equal(img.Tags["team"], "platform"), img.ID)
		assert.Check(t, is.Equal(img.IMDSSupport, "v2.0"), img.ID)
		in := time.Until(img.DeprecateAt)
		assert.Check(t, in > 2150*time.Hour && in <= 2160*time.Hour, "%s deprecated in %s", img.ID, in)
	}
}
