package tree

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Settings say how an image's AMI is made and who may use it, as amazon-ebs options. Under
// `defaults:` they apply to every image; an image's own (in its entry) replace them field by
// field. After Parse, every Image holds its resolved settings.
//
// What changes the AMI or who may launch it is part of the fingerprint (a change rebuilds):
// encryption and keys, sharing, IMDS support and tags (IAM policies can grant by tag). What
// does not is left out of it (json:"-"): when the AMI is deprecated and the SSM parameter
// its id is published under.
type Settings struct {
	EncryptBoot *bool  `yaml:"encrypt_boot,omitempty" json:"encrypt_boot,omitempty"`
	KMSKeyID    string `yaml:"kms_key_id,omitempty" json:"kms_key_id,omitempty"`
	// RegionKMSKeyIDs are the keys of the copies, by region (Packer wants one per copy region
	// when kms_key_id is set).
	RegionKMSKeyIDs map[string]string `yaml:"region_kms_key_ids,omitempty" json:"region_kms_key_ids,omitempty"`
	AMIUsers        []string          `yaml:"ami_users,omitempty" json:"ami_users,omitempty"`
	AMIOrgARNs      []string          `yaml:"ami_org_arns,omitempty" json:"ami_org_arns,omitempty"`
	AMIOUARNs       []string          `yaml:"ami_ou_arns,omitempty" json:"ami_ou_arns,omitempty"`
	SnapshotUsers   []string          `yaml:"snapshot_users,omitempty" json:"snapshot_users,omitempty"`
	// IMDSSupport is "v2.0" (the default: instances launched from the AMI require IMDSv2) or
	// "optional".
	IMDSSupport string `yaml:"imds_support,omitempty" json:"imds_support,omitempty"`
	// Tags are extra tags on the AMI and its snapshots.
	Tags map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// DeprecateAt is how long after its build the AMI is deprecated, a Go duration (2160h).
	DeprecateAt string `yaml:"deprecate_at,omitempty" json:"-"`
	// SSMParameter is the parameter the current AMI id is published under; "{image}" is
	// replaced by the image's name. Default /amichain/{image}; "" publishes none.
	SSMParameter *string `yaml:"ssm_parameter,omitempty" json:"-"`
}

// DefaultSSMParameter is where an image's current AMI is published unless configured.
const DefaultSSMParameter = "/amichain/{image}"

// Parameter returns the SSM parameter name of the image's current AMI; "" for none.
func (img Image) Parameter() string {
	p := DefaultSSMParameter
	if img.Settings.SSMParameter != nil {
		p = *img.Settings.SSMParameter
	}
	return strings.ReplaceAll(p, "{image}", img.Name)
}

// merge returns s with every field unset in s taken from def.
func (s Settings) merge(def Settings) Settings {
	if s.EncryptBoot == nil {
		s.EncryptBoot = def.EncryptBoot
	}
	s.KMSKeyID = cmp(s.KMSKeyID, def.KMSKeyID)
	if s.RegionKMSKeyIDs == nil {
		s.RegionKMSKeyIDs = maps.Clone(def.RegionKMSKeyIDs)
	}
	for _, f := range []struct{ dst, src *[]string }{
		{&s.AMIUsers, &def.AMIUsers}, {&s.AMIOrgARNs, &def.AMIOrgARNs},
		{&s.AMIOUARNs, &def.AMIOUARNs}, {&s.SnapshotUsers, &def.SnapshotUsers},
	} {
		if *f.dst == nil {
			*f.dst = slices.Clone(*f.src)
		}
	}
	s.IMDSSupport = cmp(s.IMDSSupport, cmp(def.IMDSSupport, "v2.0"))
	if s.Tags == nil {
		s.Tags = maps.Clone(def.Tags)
	}
	s.DeprecateAt = cmp(s.DeprecateAt, def.DeprecateAt)
	if s.SSMParameter == nil {
		s.SSMParameter = def.SSMParameter
	}
	return s
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var (
	accountID = regexp.MustCompile(`^\d{12}$`)
	orgARN    = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$`)
	ouARN     = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
	kmsKey    = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[a-zA-Z0-9/_-]+|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[a-zA-Z0-9/_-]+)$`)
	region    = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-\d$`)
	ssmName   = regexp.MustCompile(`^(/[a-zA-Z0-9_.-]+)+$`)
)

// validate checks resolved settings; where says whose they are ("image \"web\"", "defaults").
func (s Settings) validate(where string) error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s", where, field, fmt.Sprintf(format, args...))
	}
	encrypt := s.EncryptBoot != nil && *s.EncryptBoot
	if s.KMSKeyID != "" {
		if !encrypt {
			return fail("kms_key_id", "set, but encrypt_boot is not true: set encrypt_boot: true to encrypt with it")
		}
		if !kmsKey.MatchString(s.KMSKeyID) {
			return fail("kms_key_id", "%q is not a KMS key id, alias/NAME or key ARN", s.KMSKeyID)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(s.RegionKMSKeyIDs)) {
		k := s.RegionKMSKeyIDs[r]
		switch {
		case !encrypt:
			return fail("region_kms_key_ids", "set, but encrypt_boot is not true: set encrypt_boot: true to encrypt the copies")
		case !region.MatchString(r):
			return fail("region_kms_key_ids", "%q is not an AWS region (like eu-west-1)", r)
		case !kmsKey.MatchString(k):
			return fail("region_kms_key_ids["+r+"]", "%q is not a KMS key id, alias/NAME or key ARN", k)
		}
	}
	for _, l := range []struct {
		field string
		vals  []string
		re    *regexp.Regexp
		want  string
	}{
		{"ami_users", s.AMIUsers, accountID, "a 12-digit AWS account id"},
		{"snapshot_users", s.SnapshotUsers, accountID, "a 12-digit AWS account id"},
		{"ami_org_arns", s.AMIOrgARNs, orgARN, "an organization ARN (arn:aws:organizations::111122223333:organization/o-exampleorgid)"},
		{"ami_ou_arns", s.AMIOUARNs, ouARN, "an organizational unit ARN (arn:aws:organizations::111122223333:ou/o-exampleorgid/ou-examplerootid-exampleouid)"},
	} {
		for i, v := range l.vals {
			if !l.re.MatchString(v) {
				return fail(fmt.Sprintf("%s[%d]", l.field, i), "%q is not %s", v, l.want)
			}
		}
	}
	if s.IMDSSupport != "" && s.IMDSSupport != "v2.0" && s.IMDSSupport != "optional" {
		return fail("imds_support", "%q: want v2.0 (instances must use IMDSv2) or optional", s.IMDSSupport)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		lk := strings.ToLower(k)
		switch {
		case k == "" || len(k) > 128 || len(s.Tags[k]) > 256:
			return fail("tags", "%q: keys are 1 to 128 characters, values at most 256", k)
		case strings.HasPrefix(lk, "amichain:") || strings.HasPrefix(lk, "aws:") || k == "Name":
			return fail("tags", "%q is set by amichain (Name, amichain:*) or reserved by AWS (aws:*): use another key", k)
		}
	}
	if s.DeprecateAt != "" {
		d, err := time.ParseDuration(s.DeprecateAt)
		if err != nil || d <= 0 {
			return fail("deprecate_at", "%q: want a positive duration after the build, such as 2160h (90 days)", s.DeprecateAt)
		}
	}
	if p := s.SSMParameter; p != nil && *p != "" {
		name := strings.ReplaceAll(*p, "{image}", "x")
		low := strings.ToLower(name)
		if !ssmName.MatchString(name) || len(name) > 1011 || strings.HasPrefix(low, "/aws") || strings.HasPrefix(low, "/ssm") {
			return fail("ssm_parameter", "%q: want a path such as /amichain/{image} (letters, digits and ._-/, not under /aws or /ssm), or \"\" for none", *p)
		}
	}
	return nil
}

// resolveSettings gives every image its settings merged with the defaults and checks them,
// and that no two images publish under one SSM parameter.
func (t *Tree) resolveSettings() error {
	if p := t.Defaults.SSMParameter; p != nil && *p != "" && !strings.Contains(*p, "{image}") && len(t.Images) > 1 {
		return fmt.Errorf("defaults: ssm_parameter: %q names one parameter for every image: put {image} in it (e.g. /amichain/{image})", *p)
	}
	byParam := map[string]string{}
	for i := range t.Images {
		img := &t.Images[i]
		img.Settings = img.Settings.merge(t.Defaults)
		if err := img.Settings.validate(fmt.Sprintf("image %q", img.Name)); err != nil {
			return err
		}
		if p := img.Parameter(); p != "" {
			if other, dup := byParam[p]; dup {
				return fmt.Errorf("image %q: ssm_parameter: %s is also image %q's: give each image its own", img.Name, p, other)
			}
			byParam[p] = img.Name
		}
	}
	return nil
}
