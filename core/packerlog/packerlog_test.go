package packerlog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/core/packerlog"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     packerlog.Line
		ok       bool
	}{
		{
			name: "artifact id with escaped commas",
			in:   "1732540115,amazon-ebs.image,artifact,0,id,eu-west-1:ami-2%!(PACKER_COMMA)us-east-1:ami-1",
			want: packerlog.Line{Time: time.Unix(1732540115, 0).UTC(), Target: "amazon-ebs.image", Type: "artifact", Data: []string{"0", "id", "eu-west-1:ami-2,us-east-1:ami-1"}},
			ok:   true,
		},
		{
			name: "ui message with escaped newlines and a tab",
			in:   `1732540021,,ui,message,    amazon-ebs.image: a\n    amazon-ebs.image: 	b\r`,
			want: packerlog.Line{Time: time.Unix(1732540021, 0).UTC(), Type: "ui", Data: []string{"message", "    amazon-ebs.image: a\n    amazon-ebs.image: \tb\r"}},
			ok:   true,
		},
		{
			name: "empty data field is kept",
			in:   "1732540000,,ui,say,",
			want: packerlog.Line{Time: time.Unix(1732540000, 0).UTC(), Type: "ui", Data: []string{"say", ""}},
			ok:   true,
		},
		{
			name: "no data at all",
			in:   "1732540040,,error-count",
			want: packerlog.Line{Time: time.Unix(1732540040, 0).UTC(), Type: "error-count", Data: []string{}},
			ok:   true,
		},
		{name: "human output", in: "==> amazon-ebs.image: Launching a source AWS instance..."},
		{name: "timestamp not a number", in: "2024-11-25T12:00:00Z,,ui,say,x"},
		{name: "cut short", in: "1732540115,amazon-ebs.image"},
		{name: "no type", in: "1732540115,amazon-ebs.image,"},
		{name: "empty", in: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := packerlog.ParseLine(tc.in)
			assert.Equal(t, ok, tc.ok)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestCaptures(t *testing.T) {
	threeRegions := map[string]map[string]string{"amazon-ebs.image": {
		"us-east-1":      "ami-0f1e2d3c4b5a69788",
		"eu-west-1":      "ami-0ee55ff6677889900",
		"ap-southeast-2": "ami-0aa11bb22cc33dd44",
	}}
	for _, tc := range []struct {
		file         string
		wantAMIs     map[string]map[string]string
		wantRelevant []string
	}{
		{
			file:     "one-region.out",
			wantAMIs: map[string]map[string]string{"amazon-ebs.image": {"us-east-1": "ami-0f1e2d3c4b5a69788"}},
		},
		{file: "regions.out", wantAMIs: threeRegions},
		{file: "regions-manifest.out", wantAMIs: threeRegions},
		{
			file:     "ansible-fatal.out",
			wantAMIs: map[string]map[string]string{},
			wantRelevant: []string{
				`amazon-ebs.image: fatal: [default]: FAILED! => {"changed": false, "msg": "No package matching 'nginx-ful' is available"}`,
				"Build 'amazon-ebs.image' errored after 40 seconds 120 milliseconds: Error executing Ansible: Non-zero exit status: exit status 2",
				"==> Some builds didn't complete successfully and had errors:",
				"--> amazon-ebs.image: Error executing Ansible: Non-zero exit status: exit status 2",
			},
		},
		{
			file:     "garbage.out",
			wantAMIs: map[string]map[string]string{"amazon-ebs.image": {"us-east-1": "ami-0f1e2d3c4b5a69788"}},
			wantRelevant: []string{
				"not,a,packer line",
				"2024-11-25T12:00:00Z,amazon-ebs.image,ui,say,iso timestamps are not packer's",
				"panic: runtime error: invalid memory address or nil pointer dereference",
				"17325",
				",,,",
				// The cut-short last line is well-formed, just useless: not quoted.
			},
		},
		{
			file:     "null-fail.out",
			wantAMIs: map[string]map[string]string{},
			wantRelevant: []string{
				"==> null.image: the widget is broken",
				"Build 'null.image' errored after 44 milliseconds 249 microseconds: Script exited with non-zero exit status: 3. Allowed exit codes are: [0]",
				"==> Some builds didn't complete successfully and had errors:",
				"--> null.image: Script exited with non-zero exit status: 3. Allowed exit codes are: [0]",
			},
		},
		{
			// Real output; the null builder's artifact id is "Null", listed twice.
			file:     "null-manifest.out",
			wantAMIs: map[string]map[string]string{},
		},
		{
			file:     "null-cancelled.out",
			wantAMIs: map[string]map[string]string{},
			wantRelevant: []string{
				"Cancelling build after receiving interrupt",
				"Build 'null.image' errored after 1 second 520 milliseconds: context canceled",
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			assert.NilError(t, err)
			defer f.Close()
			c, err := packerlog.Collect(f)
			assert.NilError(t, err)
			amis, err := c.AMIs()
			assert.NilError(t, err)
			assert.DeepEqual(t, amis, tc.wantAMIs)
			assert.DeepEqual(t, c.Relevant(), tc.wantRelevant)
		})
	}
}

func TestAMIsConflict(t *testing.T) {
	lines := []packerlog.Line{
		{Target: "amazon-ebs.image", Type: "artifact", Data: []string{"0", "id", "us-east-1:ami-1"}},
		{Target: "amazon-ebs.image", Type: "artifact", Data: []string{"1", "id", "us-east-1:ami-2"}},
	}
	_, err := packerlog.Artifacts(lines)
	assert.Error(t, err, "build amazon-ebs.image reported two AMIs for us-east-1: ami-1 and ami-2 (artifact 1)")
}

func TestArtifactsSeveralTargets(t *testing.T) {
	lines := []packerlog.Line{
		{Target: "amazon-ebs.a", Type: "artifact", Data: []string{"0", "builder-id", "mitchellh.amazonebs"}},
		{Target: "amazon-ebs.a", Type: "artifact", Data: []string{"0", "id", "us-east-1:ami-1"}},
		{Target: "null.b", Type: "artifact", Data: []string{"0", "id", "Null"}},
		{Target: "amazon-ebs.c", Type: "artifact", Data: []string{"0", "id", "eu-west-1:ami-3,us-east-1:ami-2"}},
		{Target: "amazon-ebs.c", Type: "artifact", Data: []string{"x", "id", "us-east-1:ami-9"}},
	}
	got, err := packerlog.Artifacts(lines)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, map[string]map[string]string{
		"amazon-ebs.a": {"us-east-1": "ami-1"},
		"amazon-ebs.c": {"us-east-1": "ami-2", "eu-west-1": "ami-3"},
	})
}

func TestParseAMIs(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want map[string]string
	}{
		{id: "us-east-1:ami-0abc", want: map[string]string{"us-east-1": "ami-0abc"}},
		{id: "eu-west-1:ami-2,us-east-1:ami-1", want: map[string]string{"eu-west-1": "ami-2", "us-east-1": "ami-1"}},
		{id: "Null"},
		{id: ""},
		{id: "us-east-1:ami-"},
		{id: ":ami-1"},
		{id: "us-east-1:snap-1"},
		{id: "us-east-1:ami-1,"},
		{id: "us-east-1:ami-1,us-east-1:ami-2"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			got, ok := packerlog.ParseAMIs(tc.id)
			assert.Equal(t, ok, tc.want != nil)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestRelevantKeepsTheLast(t *testing.T) {
	var c packerlog.Collector
	for i := range 30 {
		c.Add(packerlog.Line{Type: "ui", Data: []string{"error", fmt.Sprintf("  error %d  ", i)}})
	}
	c.Add(packerlog.Line{Type: "ui", Data: []string{"say", "==> amazon-ebs.image: Terminating the source AWS instance..."}})
	got := c.Relevant()
	assert.Assert(t, is.Len(got, packerlog.MaxRelevant))
	assert.Equal(t, got[0], "error 10")
	assert.Equal(t, got[len(got)-1], "error 29")
}

func TestScannerLongLine(t *testing.T) {
	// Far beyond bufio.Scanner's default 64 KiB token limit, as one Ansible result can be.
	long := strings.Repeat("x", 1<<20)
	in := "1732540000,,ui,message," + long + "\n1732540001,,ui,say,next"
	s := packerlog.NewScanner(strings.NewReader(in))
	var msgs []string
	for s.Scan() {
		l, ok := s.Line()
		assert.Assert(t, ok, s.Text())
		msgs = append(msgs, l.Data[1])
	}
	assert.NilError(t, s.Err())
	assert.DeepEqual(t, msgs, []string{long, "next"})
}

// TestReads: the trace hook's markers arrive as ui lines, prefixed by Packer with the build's
// name and their commas escaped; they are collected once each and are no failure to quote.
func TestReads(t *testing.T) {
	out := strings.Join([]string{
		`1764600000,,ui,message,    amazon-ebs.web: amichain-ansible-read: {"kind": "file"%!(PACKER_COMMA) "path": "ansible/web.yml"}`,
		`1764600000,,ui,error,    amazon-ebs.web: amichain-ansible-read: {"kind": "dir"%!(PACKER_COMMA) "path": "ansible/filter_plugins"}`,
		`1764600001,,ui,message,    amazon-ebs.web: amichain-ansible-read: {"kind": "file"%!(PACKER_COMMA) "path": "ansible/web.yml"}`,
		`1764600001,,ui,message,    amazon-ebs.web: TASK [nginx : install] ****`,
	}, "\n") + "\n"
	c, err := packerlog.Collect(strings.NewReader(out))
	assert.NilError(t, err)
	assert.DeepEqual(t, c.Reads(), []ansibletrace.Read{
		{Path: "ansible/filter_plugins", Kind: ansibletrace.Dir},
		{Path: "ansible/web.yml", Kind: ansibletrace.File},
	})
	assert.DeepEqual(t, c.Relevant(), []string(nil))
}

// A failed assert's result, as Ansible prints it (over several lines) and Packer relays it.
func TestMultiLineFailure(t *testing.T) {
	var c packerlog.Collector
	for _, m := range []string{
		`    amazon-ebs.image: TASK [The web_app role ran] *****`,
		`    amazon-ebs.image: fatal: [default]: FAILED! => {`,
		`    amazon-ebs.image:     "assertion": "written.stat.exists",`,
		`    amazon-ebs.image:     "changed": false,`,
		`    amazon-ebs.image:     "evaluated_to": false,`,
		`    amazon-ebs.image:     "msg": "/tmp/x/web/missing.txt is missing"`,
		`    amazon-ebs.image: }`,
		`    amazon-ebs.image: PLAY RECAP *****`,
	} {
		c.Add(packerlog.Line{Type: "ui", Data: []string{"message", m}})
	}
	assert.DeepEqual(t, c.Relevant(), []string{`amazon-ebs.image: fatal: [default]: FAILED! => { "assertion": "written.stat.exists", "changed": false, "evaluated_to": false, "msg": "/tmp/x/web/missing.txt is missing" }`})
}
