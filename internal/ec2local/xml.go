package ec2local

import (
	"encoding/xml"
	"slices"
	"strings"
	"time"
)

// response is every action's answer: the root element is <ActionResponse>, fields not set are
// left out.
type response struct {
	XMLName        xml.Name
	XMLNS          string           `xml:"xmlns,attr"`
	RequestID      string           `xml:"requestId"`
	Return         string           `xml:"return,omitempty"`
	ImageID        string           `xml:"imageId,omitempty"`
	Images         []imageXML       `xml:"imagesSet>item"`
	ReservationID  string           `xml:"reservationId,omitempty"`
	OwnerID        string           `xml:"ownerId,omitempty"`
	Instances      []instanceXML    `xml:"instancesSet>item"`
	Reservations   []reservationXML `xml:"reservationSet>item"`
	Subnets        []subnetXML      `xml:"subnetSet>item"`
	SecurityGroups []sgXML          `xml:"securityGroupInfo>item"`
	Volumes        []volumeXML      `xml:"volumeSet>item"`
	Regions        []regionXML      `xml:"regionInfo>item"`
	KeyPairs       []keyPairXML     `xml:"keySet>item"`
	KeyName        string           `xml:"keyName,omitempty"`
	KeyPairID      string           `xml:"keyPairId,omitempty"`
	KeyFingerprint string           `xml:"keyFingerprint,omitempty"`
	KeyMaterial    string           `xml:"keyMaterial,omitempty"`
	GroupID        string           `xml:"groupId,omitempty"`
	Snapshots      []snapshotXML    `xml:"snapshotSet>item"`

	LaunchTemplates        []launchTemplateXML        `xml:"launchTemplates>item"`
	LaunchTemplateVersions []launchTemplateVersionXML `xml:"launchTemplateVersionSet>item"`
	ImageReferences        []imageReferenceXML        `xml:"imageReferenceSet>item"`
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type ebsXML struct {
	SnapshotID string `xml:"snapshotId,omitempty"`
	VolumeID   string `xml:"volumeId,omitempty"`
	VolumeSize int    `xml:"volumeSize,omitempty"`
	VolumeType string `xml:"volumeType,omitempty"`
	Status     string `xml:"status,omitempty"`
	Delete     bool   `xml:"deleteOnTermination"`
	Encrypted  bool   `xml:"encrypted"`
}

type bdmXML struct {
	DeviceName string `xml:"deviceName"`
	EBS        ebsXML `xml:"ebs"`
}

type imageXML struct {
	ID                 string   `xml:"imageId"`
	Location           string   `xml:"imageLocation"`
	State              string   `xml:"imageState"`
	OwnerID            string   `xml:"imageOwnerId"`
	CreationDate       string   `xml:"creationDate"`
	Public             bool     `xml:"isPublic"`
	Architecture       string   `xml:"architecture"`
	Type               string   `xml:"imageType"`
	Name               string   `xml:"name"`
	RootDeviceType     string   `xml:"rootDeviceType"`
	RootDeviceName     string   `xml:"rootDeviceName"`
	BlockDevices       []bdmXML `xml:"blockDeviceMapping>item"`
	VirtualizationType string   `xml:"virtualizationType"`
	Hypervisor         string   `xml:"hypervisor"`
	ENASupport         bool     `xml:"enaSupport"`
	Tags               []tagXML `xml:"tagSet>item"`
	DeprecationTime    string   `xml:"deprecationTime,omitempty"`
	IMDSSupport        string   `xml:"imdsSupport,omitempty"`
}

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

var stateCode = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

type instanceXML struct {
	ID               string    `xml:"instanceId"`
	ImageID          string    `xml:"imageId,omitempty"`
	State            *stateXML `xml:"instanceState,omitempty"`
	Current          *stateXML `xml:"currentState,omitempty"`
	Previous         *stateXML `xml:"previousState,omitempty"`
	KeyName          string    `xml:"keyName,omitempty"`
	InstanceType     string    `xml:"instanceType,omitempty"`
	LaunchTime       string    `xml:"launchTime,omitempty"`
	AvailabilityZone string    `xml:"placement>availabilityZone,omitempty"`
	SubnetID         string    `xml:"subnetId,omitempty"`
	VPCID            string    `xml:"vpcId,omitempty"`
	PrivateIP        string    `xml:"privateIpAddress,omitempty"`
	PublicIP         string    `xml:"ipAddress,omitempty"`
	Groups           []sgXML   `xml:"groupSet>item"`
	Architecture     string    `xml:"architecture,omitempty"`
	RootDeviceType   string    `xml:"rootDeviceType,omitempty"`
	RootDeviceName   string    `xml:"rootDeviceName,omitempty"`
	BlockDevices     []bdmXML  `xml:"blockDeviceMapping>item"`
	Virtualization   string    `xml:"virtualizationType,omitempty"`
	Tags             []tagXML  `xml:"tagSet>item"`
}

type reservationXML struct {
	ID        string        `xml:"reservationId"`
	OwnerID   string        `xml:"ownerId"`
	Instances []instanceXML `xml:"instancesSet>item"`
}

type subnetXML struct {
	ID               string `xml:"subnetId"`
	State            string `xml:"state"`
	VPCID            string `xml:"vpcId"`
	CIDR             string `xml:"cidrBlock"`
	Available        int    `xml:"availableIpAddressCount"`
	AvailabilityZone string `xml:"availabilityZone"`
}

type sgXML struct {
	OwnerID     string   `xml:"ownerId,omitempty"`
	ID          string   `xml:"groupId"`
	Name        string   `xml:"groupName"`
	Description string   `xml:"groupDescription,omitempty"`
	VPCID       string   `xml:"vpcId,omitempty"`
	Tags        []tagXML `xml:"tagSet>item"`
}

type attachXML struct {
	VolumeID   string `xml:"volumeId"`
	InstanceID string `xml:"instanceId"`
	Device     string `xml:"device"`
	Status     string `xml:"status"`
}

type volumeXML struct {
	ID               string      `xml:"volumeId"`
	Size             int         `xml:"size"`
	AvailabilityZone string      `xml:"availabilityZone"`
	Status           string      `xml:"status"`
	Attachments      []attachXML `xml:"attachmentSet>item"`
}

type regionXML struct {
	Name     string `xml:"regionName"`
	Endpoint string `xml:"regionEndpoint"`
}

const timeFormat = "2006-01-02T15:04:05.000Z"

func (s *Server) tagsXML(id string) []tagXML {
	var out []tagXML
	for k, v := range s.tags[id] {
		out = append(out, tagXML{k, v})
	}
	slices.SortFunc(out, func(a, b tagXML) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func (s *Server) imageXML(img *Image) imageXML {
	snap := img.Snapshot
	return imageXML{
		ID: img.ID, Location: img.OwnerID + "/" + img.Name, State: img.State, OwnerID: img.OwnerID,
		CreationDate: img.CreationDate.Format(timeFormat), Architecture: "x86_64", Type: "machine",
		Name: img.Name, RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		BlockDevices:       []bdmXML{{"/dev/xvda", ebsXML{SnapshotID: snap, VolumeSize: 8, VolumeType: "gp3", Delete: true, Encrypted: img.Encrypted}}},
		VirtualizationType: "hvm", Hypervisor: "xen", ENASupport: true, Tags: s.tagsXML(img.ID),
		DeprecationTime: deprecation(img.DeprecateAt), IMDSSupport: img.IMDSSupport,
	}
}

func deprecation(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeFormat)
}

func (s *Server) instanceXML(inst *instance) instanceXML {
	return instanceXML{
		ID: inst.id, ImageID: inst.imageID, State: &stateXML{stateCode[inst.state], inst.state},
		KeyName: inst.keyName, InstanceType: inst.instanceType,
		LaunchTime: inst.launched.Format(timeFormat), AvailabilityZone: inst.region + "a",
		SubnetID: SubnetID, VPCID: VPCID, PrivateIP: s.opts.Host, PublicIP: s.opts.Host,
		Groups: s.groupsXML(inst.groups), Architecture: "x86_64",
		RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		BlockDevices:   []bdmXML{{"/dev/xvda", ebsXML{VolumeID: inst.volumeID, Status: "attached", Delete: true}}},
		Virtualization: "hvm", Tags: s.tagsXML(inst.id),
	}
}

func (s *Server) groupsXML(ids []string) []sgXML {
	var out []sgXML
	for _, id := range ids {
		name := "amichain-test"
		if g, ok := s.groups[id]; ok {
			name = g.name
		}
		out = append(out, sgXML{ID: id, Name: name})
	}
	return out
}
