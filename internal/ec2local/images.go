package ec2local

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// What pruning and image settings need: snapshots (one per image, as Packer's images have),
// deprecation, launch permissions, launch templates and DescribeImageReferences, plus a log
// of every request's parameters so tests can see what Packer asked for.

// Snapshot is the root volume snapshot of an image; it outlives a deregistered image until
// DeleteSnapshot, as in EC2.
type Snapshot struct {
	ID, Region, ImageID string
	Encrypted           bool
	KMSKeyID            string
	SizeGiB             int
	// CreateVolumeUsers are the accounts given createVolumePermission.
	CreateVolumeUsers []string
}

// Request is one call as received: its action, the region of its signature and its
// parameters.
type Request struct {
	Action, Region string
	Params         url.Values
}

// Requests lists the calls of action (all calls for ""), in order.
func (s *Server) Requests(action string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if action == "" || r.Action == action {
			out = append(out, Request{r.Action, r.Region, cloneValues(r.Params)})
		}
	}
	return out
}

// Snapshots lists the snapshots not deleted, in creation order.
func (s *Server) Snapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Snapshot
	for _, id := range s.snapOrder {
		if sn, ok := s.snapshots[id]; ok {
			c := *sn
			c.CreateVolumeUsers = slices.Clone(sn.CreateVolumeUsers)
			out = append(out, c)
		}
	}
	return out
}

// AllImages lists every registered image, seeded or created, with its tags.
func (s *Server) AllImages() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Image
	for _, img := range s.images {
		c := *img
		c.Tags = cloneMap(s.tags[img.ID])
		out = append(out, c)
	}
	return out
}

// AddLaunchTemplate creates a launch template whose default (and latest) version launches
// imageID (an AMI id, or resolve:ssm:NAME), as a team's own infrastructure would.
func (s *Server) AddLaunchTemplate(region, name, imageID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt := &launchTemplate{id: s.newID("lt"), name: name, region: region, versions: []string{imageID}}
	s.templates = append(s.templates, lt)
	return lt.id
}

// Launch starts an instance of imageID outside any build (a running workload).
func (s *Server) Launch(region, imageID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := &instance{id: s.newID("i"), imageID: imageID, region: region, state: "running",
		volumeID: s.newID("vol"), launched: time.Now().UTC(), groups: []string{SecurityGroupID}}
	s.instances[inst.id] = inst
	return inst.id
}

type launchTemplate struct {
	id, name, region string
	versions         []string // image id of version 1, 2, ...
}

func (s *Server) newSnapshot(img *Image, encrypted bool, kms string) {
	img.Snapshot = "snap-" + strings.TrimPrefix(img.ID, "ami-")
	s.snapshots[img.Snapshot] = &Snapshot{ID: img.Snapshot, Region: img.Region, ImageID: img.ID, Encrypted: encrypted, KMSKeyID: kms, SizeGiB: 8}
	s.snapOrder = append(s.snapOrder, img.Snapshot)
}

func (s *Server) snapshot(region, id string) (*Snapshot, *apiError) {
	if sn, ok := s.snapshots[id]; ok && sn.Region == region {
		return sn, nil
	}
	return nil, &apiError{"InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id)}
}

func (s *Server) describeSnapshots(region string, f url.Values) (*response, *apiError) {
	ids := list(f, "SnapshotId")
	for _, id := range ids {
		if _, err := s.snapshot(region, id); err != nil {
			return nil, err
		}
	}
	out := &response{Snapshots: []snapshotXML{}}
	for _, id := range s.snapOrder {
		sn, ok := s.snapshots[id]
		if !ok || sn.Region != region || (len(ids) > 0 && !slices.Contains(ids, id)) {
			continue
		}
		match, err := matchFilters(filtersOf(f), func(name string) ([]string, bool) {
			switch name {
			case "snapshot-id":
				return []string{sn.ID}, true
			case "owner-id":
				return []string{AccountID}, true
			case "status":
				return []string{"completed"}, true
			}
			return s.tagAttr(sn.ID, name)
		})
		if err != nil {
			return nil, err
		}
		if match {
			out.Snapshots = append(out.Snapshots, snapshotXML{ID: sn.ID, VolumeSize: sn.SizeGiB, Status: "completed", OwnerID: AccountID,
				Encrypted: sn.Encrypted, KMSKeyID: sn.KMSKeyID, Description: "Created by CreateImage for " + sn.ImageID,
				StartTime: time.Now().UTC().Format(timeFormat), Tags: s.tagsXML(sn.ID)})
		}
	}
	return out, nil
}

func (s *Server) deleteSnapshot(region string, f url.Values) (*response, *apiError) {
	sn, err := s.snapshot(region, f.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	for _, img := range s.images {
		if img.Snapshot == sn.ID {
			return nil, &apiError{"InvalidSnapshot.InUse", fmt.Sprintf("The snapshot %s is currently in use by %s", sn.ID, img.ID)}
		}
	}
	delete(s.snapshots, sn.ID)
	return &response{Return: "true"}, nil
}

func (s *Server) modifySnapshotAttribute(region string, f url.Values) (*response, *apiError) {
	sn, err := s.snapshot(region, f.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	for i := 1; f.Has(fmt.Sprintf("CreateVolumePermission.Add.%d.UserId", i)); i++ {
		sn.CreateVolumeUsers = append(sn.CreateVolumeUsers, f.Get(fmt.Sprintf("CreateVolumePermission.Add.%d.UserId", i)))
	}
	return &response{Return: "true"}, nil
}

func (s *Server) modifyImageAttribute(region string, f url.Values) (*response, *apiError) {
	img, err := s.image(region, f.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	if d := f.Get("Description.Value"); d != "" {
		img.Description = d
	}
	if v := f.Get("ImdsSupport.Value"); v != "" {
		if v != "v2.0" {
			return nil, &apiError{"InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter imdsSupport is invalid: use v2.0", v)}
		}
		img.IMDSSupport = v
	}
	for i := 1; ; i++ {
		p := fmt.Sprintf("LaunchPermission.Add.%d.", i)
		user, org, ou, group := f.Get(p+"UserId"), f.Get(p+"OrganizationArn"), f.Get(p+"OrganizationalUnitArn"), f.Get(p+"Group")
		if user+org+ou+group == "" {
			break
		}
		img.LaunchPermissions = append(img.LaunchPermissions, user+org+ou+group)
	}
	return &response{Return: "true"}, nil
}

func (s *Server) enableImageDeprecation(region string, f url.Values) (*response, *apiError) {
	img, err := s.image(region, f.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	at, perr := time.Parse(time.RFC3339, f.Get("DeprecateAt"))
	if perr != nil {
		return nil, &apiError{"InvalidParameterValue", fmt.Sprintf("Invalid value '%s' for DeprecateAt", f.Get("DeprecateAt"))}
	}
	img.DeprecateAt = at.UTC()
	return &response{Return: "true"}, nil
}

func (s *Server) describeLaunchTemplates(region string, f url.Values) (*response, *apiError) {
	out := &response{LaunchTemplates: []launchTemplateXML{}}
	for _, lt := range s.templates {
		if lt.region == region {
			n := len(lt.versions)
			out.LaunchTemplates = append(out.LaunchTemplates, launchTemplateXML{lt.id, lt.name, 1, n})
		}
	}
	return out, nil
}

func (s *Server) describeLaunchTemplateVersions(region string, f url.Values) (*response, *apiError) {
	var lt *launchTemplate
	for _, t := range s.templates {
		if t.region == region && (t.id == f.Get("LaunchTemplateId") || t.name == f.Get("LaunchTemplateName")) {
			lt = t
		}
	}
	if lt == nil {
		return nil, &apiError{"InvalidLaunchTemplateId.NotFound", fmt.Sprintf("The specified launch template, with template ID %s, does not exist.", f.Get("LaunchTemplateId"))}
	}
	want := list(f, "LaunchTemplateVersion")
	out := &response{LaunchTemplateVersions: []launchTemplateVersionXML{}}
	for i, image := range lt.versions {
		v := i + 1
		if len(want) > 0 && !slices.ContainsFunc(want, func(w string) bool {
			return w == fmt.Sprint(v) || (w == "$Latest" && v == len(lt.versions)) || (w == "$Default" && v == 1)
		}) {
			continue
		}
		out.LaunchTemplateVersions = append(out.LaunchTemplateVersions, launchTemplateVersionXML{
			ID: lt.id, Name: lt.name, Version: v, Default: v == 1, Data: launchTemplateDataXML{ImageID: image}})
	}
	return out, nil
}

// describeImageReferences finds the instances and launch templates (default and latest
// versions) that use the given images, as EC2's DescribeImageReferences does.
func (s *Server) describeImageReferences(region string, f url.Values) (*response, *apiError) {
	ids := list(f, "ImageId")
	for _, id := range ids {
		if _, err := s.image(region, id); err != nil {
			return nil, err
		}
	}
	out := &response{ImageReferences: []imageReferenceXML{}}
	for _, id := range sortedKeys(s.instances) {
		inst := s.instances[id]
		if inst.region == region && inst.state != "terminated" && slices.Contains(ids, inst.imageID) {
			out.ImageReferences = append(out.ImageReferences, imageReferenceXML{inst.imageID, "ec2:Instance",
				fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, AccountID, inst.id)})
		}
	}
	for _, lt := range s.templates {
		for i, image := range lt.versions {
			if lt.region == region && slices.Contains(ids, image) && (i == 0 || i == len(lt.versions)-1) {
				out.ImageReferences = append(out.ImageReferences, imageReferenceXML{image, "ec2:LaunchTemplate",
					fmt.Sprintf("arn:aws:ec2:%s:%s:launch-template/%s", region, AccountID, lt.id)})
			}
		}
	}
	return out, nil
}

type snapshotXML struct {
	ID          string   `xml:"snapshotId"`
	VolumeSize  int      `xml:"volumeSize"`
	Status      string   `xml:"status"`
	OwnerID     string   `xml:"ownerId"`
	Encrypted   bool     `xml:"encrypted"`
	KMSKeyID    string   `xml:"kmsKeyId,omitempty"`
	Description string   `xml:"description"`
	StartTime   string   `xml:"startTime"`
	Tags        []tagXML `xml:"tagSet>item"`
}

type launchTemplateXML struct {
	ID             string `xml:"launchTemplateId"`
	Name           string `xml:"launchTemplateName"`
	DefaultVersion int    `xml:"defaultVersionNumber"`
	LatestVersion  int    `xml:"latestVersionNumber"`
}

type launchTemplateDataXML struct {
	ImageID string `xml:"imageId"`
}

type launchTemplateVersionXML struct {
	ID      string                `xml:"launchTemplateId"`
	Name    string                `xml:"launchTemplateName"`
	Version int                   `xml:"versionNumber"`
	Default bool                  `xml:"defaultVersion"`
	Data    launchTemplateDataXML `xml:"launchTemplateData"`
}

type imageReferenceXML struct {
	ImageID      string `xml:"imageId"`
	ResourceType string `xml:"resourceType"`
	ARN          string `xml:"arn"`
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
