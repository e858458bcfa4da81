package tree_test

import (
	"testing"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/tree"
)

func TestSettings(t *testing.T) {
	const head = "upstream: {ami: ami-0123}\n"
	const images = "images:\n  - {name: base, template: t.pkr.hcl, playbook: b.yml}\n  - {name: web, parent: base, template: t.pkr.hcl, playbook: w.yml, ami_users: ['999988887777'], ssm_parameter: ''}\n"
	tests := []struct {
		name, yaml, err string
	}{
		{name: "kms without encryption", yaml: head + "defaults: {kms_key_id: alias/k}\n" + images,
			err: "amichain.yaml: defaults: kms_key_id: set, but encrypt_boot is not true"},
		{name: "image turns encryption off under a default key", yaml: head + "defaults: {encrypt_boot: true, kms_key_id: alias/k}\n" + images +
			"  - {name: edge, template: t.pkr.hcl, playbook: w.yml, encrypt_boot: false}\n",
			err: `amichain.yaml: image "edge": kms_key_id: set, but encrypt_boot is not true`},
		{name: "bad kms key", yaml: head + "defaults: {encrypt_boot: true, kms_key_id: mykey}\n" + images,
			err: `kms_key_id: "mykey" is not a KMS key id, alias/NAME or key ARN`},
		{name: "bad region key", yaml: head + "defaults: {encrypt_boot: true, region_kms_key_ids: {mars-1: alias/k}}\n" + images,
			err: `region_kms_key_ids: "mars-1" is not an AWS region`},
		{name: "bad account", yaml: head + "defaults: {ami_users: ['111122223333', '12']}\n" + images,
			err: `defaults: ami_users[1]: "12" is not a 12-digit AWS account id`},
		{name: "bad snapshot user", yaml: head + "defaults: {snapshot_users: [me]}\n" + images,
			err: `snapshot_users[0]: "me" is not a 12-digit AWS account id`},
		{name: "bad org", yaml: head + "defaults: {ami_org_arns: [o-123]}\n" + images,
			err: `ami_org_arns[0]: "o-123" is not an organization ARN`},
		{name: "bad ou", yaml: head + "defaults: {ami_ou_arns: ['arn:aws:organizations::111122223333:organization/o-exampleorg1']}\n" + images,
			err: `ami_ou_arns[0]: "arn:aws:organizations::111122223333:organization/o-exampleorg1" is not an organizational unit ARN`},
		{name: "bad imds", yaml: head + "defaults: {imds_support: v1}\n" + images,
			err: `imds_support: "v1": want v2.0`},
		{name: "bad deprecation", yaml: head + "defaults: {deprecate_at: 90d}\n" + images,
			err: `deprecate_at: "90d": want a positive duration`},
		{name: "reserved tag", yaml: head + "defaults: {tags: {'amichain:image': x}}\n" + images,
			err: `tags: "amichain:image" is set by amichain`},
		{name: "one parameter for all", yaml: head + "defaults: {ssm_parameter: /amis/current}\n" + images,
			err: `defaults: ssm_parameter: "/amis/current" names one parameter for every image`},
		{name: "parameter under /aws", yaml: head + "defaults: {ssm_parameter: '/aws/{image}'}\n" + images,
			err: `ssm_parameter: "/aws/{image}": want a path`},
		{name: "unknown setting", yaml: head + "defaults: {encrypt: true}\n" + images,
			err: `amichain.yaml:2: unknown field "encrypt" in defaults (valid fields: encrypt_boot, kms_key_id`},
		{name: "valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.yaml == "" {
				tc.yaml = head + "defaults: {encrypt_boot: true, kms_key_id: alias/k, ami_users: ['111122223333'], deprecate_at: 2160h, tags: {team: a}}\n" + images
			}
			tr, err := tree.Parse("amichain.yaml", []byte(tc.yaml))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			base, _ := tr.Get("base")
			web, _ := tr.Get("web")
			assert.Equal(t, base.Parameter(), "/amichain/base")
			assert.Equal(t, web.Parameter(), "", "ssm_parameter: '' publishes none")
			assert.DeepEqual(t, base.Settings.AMIUsers, []string{"111122223333"})
			assert.DeepEqual(t, web.Settings.AMIUsers, []string{"999988887777"}) // its own replaces the default
			assert.Equal(t, web.Settings.KMSKeyID, "alias/k")
			assert.Equal(t, web.Settings.IMDSSupport, "v2.0")
			assert.Equal(t, web.Settings.DeprecateAt, "2160h")
		})
	}
}
