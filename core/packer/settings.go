package packer

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/amichain/amichain/core/tree"
)

// settingVars are the template variables an image's settings (amichain.yaml) are passed as;
// packer/image.pkr.hcl turns them into amazon-ebs options.
var settingVars = []string{"encrypt_boot", "kms_key_id", "region_kms_key_ids", "ami_users", "ami_org_arns",
	"ami_ou_arns", "snapshot_users", "imds_support", "deprecate_after", "extra_tags"}

// settingsVars returns the variables of s that are set, as -var values in HCL syntax; unset
// settings pass nothing, so a template without these variables still builds an image that
// uses none of them.
func settingsVars(s tree.Settings) map[string]string {
	out := map[string]string{}
	if s.EncryptBoot != nil && *s.EncryptBoot {
		out["encrypt_boot"] = strconv.FormatBool(true)
	}
	set := func(name, v string) {
		if v != "" {
			out[name] = v
		}
	}
	set("kms_key_id", s.KMSKeyID)
	set("deprecate_after", s.DeprecateAt)
	if s.IMDSSupport == "v2.0" {
		out["imds_support"] = s.IMDSSupport
	}
	for name, l := range map[string][]string{"ami_users": s.AMIUsers, "ami_org_arns": s.AMIOrgARNs,
		"ami_ou_arns": s.AMIOUARNs, "snapshot_users": s.SnapshotUsers} {
		if len(l) > 0 {
			out[name] = hcl(l)
		}
	}
	for name, m := range map[string]map[string]string{"region_kms_key_ids": s.RegionKMSKeyIDs, "extra_tags": s.Tags} {
		if len(m) > 0 {
			out[name] = hcl(m)
		}
	}
	return out
}

// hcl writes a list or map of strings as an HCL expression: JSON, with template sequences
// escaped so that a value is taken literally.
func hcl(v any) string {
	if m, ok := v.(map[string]string); ok {
		// Sorted keys: the same settings give the same arguments.
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, hclString(k)+" = "+hclString(m[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	var parts []string
	for _, s := range v.([]string) {
		parts = append(parts, hclString(s))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func hclString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return strings.NewReplacer("${", "$${", "%{", "%%{").Replace(string(b))
}
