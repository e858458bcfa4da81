package ec2local

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The temporary resources Packer creates without ssh_keypair_name and security_group_id, and
// the tag filters a janitor finds leftovers with.

type keyPair struct {
	id, name string
	created  time.Time
}

type securityGroup struct {
	id, name, description string
}

// keyPairXML is one item of DescribeKeyPairs.
type keyPairXML struct {
	ID          string   `xml:"keyPairId"`
	Name        string   `xml:"keyName"`
	Fingerprint string   `xml:"keyFingerprint"`
	Type        string   `xml:"keyType"`
	CreateTime  string   `xml:"createTime"`
	Tags        []tagXML `xml:"tagSet>item"`
}

// tagSpec reads the tags of TagSpecification.N whose ResourceType is kind.
func tagSpec(f url.Values, kind string) map[string]string {
	v := f
	out := map[string]string{}
	for i := 1; v.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if v.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) == kind {
			for k, val := range tagsOf(v, fmt.Sprintf("TagSpecification.%d.Tag", i)) {
				out[k] = val
			}
		}
	}
	return out
}

func (s *Server) createKeyPair(f url.Values) (*response, *apiError) {
	v := f
	name := v.Get("KeyName")
	if name == "" {
		return nil, &apiError{"MissingParameter", "The request must contain the parameter KeyName"}
	}
	for _, k := range s.keyPairs {
		if k.name == name {
			return nil, &apiError{"InvalidKeyPair.Duplicate", fmt.Sprintf("The keypair '%s' already exists.", name)}
		}
	}
	k := &keyPair{id: s.newID("key"), name: name, created: time.Now().UTC()}
	s.keyPairs[k.id] = k
	s.addTags(k.id, tagSpec(f, "key-pair"))
	return &response{KeyName: name, KeyPairID: k.id, KeyFingerprint: "00:11:22:33",
		// Not a usable key: tests that need SSH pass ssh_keypair_name instead.
		KeyMaterial: "-----BEGIN OPENSSH PRIVATE KEY-----\nec2local\n-----END OPENSSH PRIVATE KEY-----\n"}, nil
}

func (s *Server) describeKeyPairs(f url.Values) (*response, *apiError) {
	v := f
	names, ids := list(v, "KeyName"), list(v, "KeyPairId")
	out := &response{KeyPairs: []keyPairXML{}}
	for _, id := range sortedKeys(s.keyPairs) {
		k := s.keyPairs[id]
		if (len(names) > 0 && !slices.Contains(names, k.name)) || (len(ids) > 0 && !slices.Contains(ids, k.id)) {
			continue
		}
		match, err := matchFilters(filtersOf(v), func(name string) ([]string, bool) {
			switch name {
			case "key-name":
				return []string{k.name}, true
			case "key-pair-id":
				return []string{k.id}, true
			}
			return s.tagAttr(k.id, name)
		})
		if err != nil {
			return nil, err
		}
		if match {
			out.KeyPairs = append(out.KeyPairs, keyPairXML{k.id, k.name, "00:11:22:33", "rsa", k.created.Format(timeFormat), s.tagsXML(k.id)})
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(out.KeyPairs, func(x keyPairXML) bool { return x.Name == n }) {
			return nil, &apiError{"InvalidKeyPair.NotFound", fmt.Sprintf("The key pair '%s' does not exist", n)}
		}
	}
	return out, nil
}

func (s *Server) deleteKeyPair(f url.Values) (*response, *apiError) {
	v := f
	// EC2 answers true for a key pair that does not exist.
	for id, k := range s.keyPairs {
		if k.name == v.Get("KeyName") || k.id == v.Get("KeyPairId") {
			delete(s.keyPairs, id)
			delete(s.tags, id)
		}
	}
	return &response{Return: "true"}, nil
}

func (s *Server) createSecurityGroup(f url.Values) (*response, *apiError) {
	v := f
	name := v.Get("GroupName")
	for _, g := range s.groups {
		if g.name == name {
			return nil, &apiError{"InvalidGroup.Duplicate", fmt.Sprintf("The security group '%s' already exists for VPC '%s'", name, VPCID)}
		}
	}
	g := &securityGroup{id: s.newID("sg"), name: name, description: v.Get("GroupDescription")}
	s.groups[g.id] = g
	s.addTags(g.id, tagSpec(f, "security-group"))
	return &response{GroupID: g.id}, nil
}

// describeSecurityGroups answers for the fixed test group and the created ones.
func (s *Server) describeSecurityGroups(f url.Values) (*response, *apiError) {
	v := f
	ids := list(v, "GroupId")
	all := []sgXML{{AccountID, SecurityGroupID, "amichain-test", "test group", VPCID, nil}}
	for _, id := range sortedKeys(s.groups) {
		g := s.groups[id]
		all = append(all, sgXML{AccountID, g.id, g.name, g.description, VPCID, s.tagsXML(g.id)})
	}
	out := &response{SecurityGroups: []sgXML{}}
	for _, g := range all {
		if len(ids) > 0 && !slices.Contains(ids, g.ID) {
			continue
		}
		match, err := matchFilters(filtersOf(v), func(name string) ([]string, bool) {
			switch name {
			case "group-id":
				return []string{g.ID}, true
			case "group-name":
				return []string{g.Name}, true
			case "vpc-id":
				return []string{VPCID}, true
			}
			return s.tagAttr(g.ID, name)
		})
		if err != nil {
			return nil, err
		}
		if match {
			out.SecurityGroups = append(out.SecurityGroups, g)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(out.SecurityGroups, func(g sgXML) bool { return g.ID == id }) {
			return nil, &apiError{"InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id)}
		}
	}
	return out, nil
}

// deleteSecurityGroup refuses while an instance that is not terminated uses the group, as EC2 does.
func (s *Server) deleteSecurityGroup(f url.Values) (*response, *apiError) {
	id := f.Get("GroupId")
	if _, ok := s.groups[id]; !ok {
		return nil, &apiError{"InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id)}
	}
	for _, inst := range s.instances {
		if inst.state != "terminated" && slices.Contains(inst.groups, id) {
			return nil, &apiError{"DependencyViolation", fmt.Sprintf("resource %s has a dependent object", id)}
		}
	}
	delete(s.groups, id)
	delete(s.tags, id)
	return &response{Return: "true"}, nil
}

// tagAttr answers the tag filters every resource type has.
func (s *Server) tagAttr(id, name string) ([]string, bool) {
	if k, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, has := s.tags[id][k]; has {
			return []string{v}, true
		}
		return nil, true
	}
	if name == "tag-key" {
		var keys []string
		for k := range s.tags[id] {
			keys = append(keys, k)
		}
		return keys, true
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
