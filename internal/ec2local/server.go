// Package ec2local is an in-process EC2 API for tests. It speaks the EC2 Query wire protocol
// (form-encoded POST with Action=..., XML answers, XML errors with HTTP 400) well enough for
// Packer's amazon-ebs builder and the AWS SDK: images, instances, tags, volumes, one VPC.
package ec2local

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fixed identities of the fake account and its one VPC.
const (
	Namespace       = "http://ec2.amazonaws.com/doc/2016-11-15/"
	AccountID       = "123456789012"
	VPCID           = "vpc-0a0a0a0a0a0a0a0a0"
	SubnetID        = "subnet-0b0b0b0b0b0b0b0b0"
	SecurityGroupID = "sg-0c0c0c0c0c0c0c0c0"
)

// Options configures a Server; the zero value works.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Region is assumed when a request's signature names none; default "us-east-1".
	Region string
	// Host is every instance's public and private IP: where Packer connects over SSH.
	Host string
	// Images are seeded upstream images.
	Images []Image
}

// Image is a seeded or created AMI.
type Image struct {
	ID           string // generated when empty
	Name         string
	OwnerID      string // default AccountID
	Region       string // default Options.Region
	CreationDate time.Time
	State        string // default "available"
	Tags         map[string]string
	Description  string
	// SourceInstance and SourceImage say what a created image was made from (for a copy:
	// SourceImage is the copied AMI); seeded images have neither.
	SourceInstance string
	SourceImage    string
	// Snapshot is the image's root snapshot (see Snapshot); Encrypted and KMSKeyID its
	// encryption, set by CopyImage with Encrypted.
	Snapshot  string
	Encrypted bool
	KMSKeyID  string
	// Set by ModifyImageAttribute and EnableImageDeprecation.
	IMDSSupport       string
	LaunchPermissions []string
	DeprecateAt       time.Time
}

// Launch is one RunInstances call that started an instance.
type Launch struct {
	InstanceID, ImageID, InstanceType, KeyName string
}

// Server is a running fake EC2 endpoint. It is safe for concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server

	mu        sync.Mutex
	seq       int
	images    []*Image
	instances map[string]*instance
	volumes   map[string]string // volume id -> instance id
	tags      map[string]map[string]string
	launches  []Launch
	calls     []string
	failures  map[string][]*apiError
	keyPairs  map[string]*keyPair
	groups    map[string]*securityGroup
	snapshots map[string]*Snapshot
	snapOrder []string
	templates []*launchTemplate
	requests  []Request
}

type instance struct {
	id, imageID, region, state, volumeID, keyName, instanceType string
	launched                                                    time.Time
	groups                                                      []string
}

// apiError is an EC2 error: Code is what SDKs match on.
type apiError struct{ Code, Message string }

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// Start listens and serves until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("ec2local: listen on %s: %w", opts.Addr, err)
	}
	s := &Server{opts: opts, ln: ln, instances: map[string]*instance{},
		volumes: map[string]string{}, tags: map[string]map[string]string{}, failures: map[string][]*apiError{},
		keyPairs: map[string]*keyPair{}, groups: map[string]*securityGroup{}, snapshots: map[string]*Snapshot{}}
	for _, img := range opts.Images {
		s.AddImage(img)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// Running returns the ids of the instances not terminated (running, pending or stopped).
func (s *Server) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, inst := range s.instances {
		if inst.state != "terminated" {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// URL is the endpoint to give SDKs and Packer (custom_endpoint_ec2).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// AddImage seeds an image and returns its id.
func (s *Server) AddImage(img Image) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if img.ID == "" {
		img.ID = s.newID("ami")
	}
	if img.OwnerID == "" {
		img.OwnerID = AccountID
	}
	if img.Region == "" {
		img.Region = s.opts.Region
	}
	if img.State == "" {
		img.State = "available"
	}
	if img.CreationDate.IsZero() {
		img.CreationDate = time.Now().UTC()
	}
	s.tags[img.ID] = maps.Clone(img.Tags)
	img.Tags = nil
	s.images = append(s.images, &img)
	s.newSnapshot(&img, false, "")
	return img.ID
}

// FailNext makes the next call of action fail with the given EC2 error code and message.
func (s *Server) FailNext(action, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[action] = append(s.failures[action], &apiError{code, message})
}

// Launches lists the instances started, in order.
func (s *Server) Launches() []Launch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.launches)
}

// Images lists the images created by CreateImage or CopyImage (not the seeded ones), in order,
// with their tags.
func (s *Server) Images() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Image
	for _, img := range s.images {
		if img.SourceImage != "" {
			c := *img
			c.Tags = maps.Clone(s.tags[img.ID])
			out = append(out, c)
		}
	}
	return out
}

// Calls lists the actions received, in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

var credentialRegion = regexp.MustCompile(`Credential=[^/,]+/\d+/([^/,]+)/`)

// ServeHTTP answers one Query request. Bodies are never logged: they may carry secrets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	region := s.opts.Region
	// The signature's scope is the only place a Query request names its region.
	if m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		region = m[1]
	}
	action := r.Form.Get("Action")
	s.mu.Lock()
	s.seq++
	reqID := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
	s.calls = append(s.calls, action)
	s.requests = append(s.requests, Request{action, region, cloneValues(r.Form)})
	resp, err := s.handle(action, region, r.Form)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>",
			escape(err.Code), escape(err.Message), reqID)
		return
	}
	resp.XMLName.Local = action + "Response"
	resp.XMLNS, resp.RequestID = Namespace, reqID
	w.Write([]byte(xml.Header))    //nolint:errcheck // the client is gone
	xml.NewEncoder(w).Encode(resp) //nolint:errcheck // the client is gone
}

func (s *Server) handle(action, region string, f url.Values) (*response, *apiError) {
	if q := s.failures[action]; len(q) > 0 {
		s.failures[action] = q[1:]
		return nil, q[0]
	}
	switch action {
	case "DescribeImages":
		return s.describeImages(region, f)
	case "CreateImage":
		return s.createImage(region, f)
	case "CopyImage":
		return s.copyImage(region, f)
	case "DeregisterImage":
		img, err := s.image(region, f.Get("ImageId"))
		if err != nil {
			return nil, err
		}
		s.images = slices.DeleteFunc(s.images, func(i *Image) bool { return i == img })
		return &response{Return: "true"}, nil
	case "ModifyImageAttribute":
		// Packer sets the description, launch permissions and IMDS support this way.
		return s.modifyImageAttribute(region, f)
	case "ModifySnapshotAttribute":
		return s.modifySnapshotAttribute(region, f)
	case "EnableImageDeprecation":
		return s.enableImageDeprecation(region, f)
	case "DescribeSnapshots":
		return s.describeSnapshots(region, f)
	case "DeleteSnapshot":
		return s.deleteSnapshot(region, f)
	case "DescribeLaunchTemplates":
		return s.describeLaunchTemplates(region, f)
	case "DescribeLaunchTemplateVersions":
		return s.describeLaunchTemplateVersions(region, f)
	case "DescribeImageReferences":
		return s.describeImageReferences(region, f)
	case "RunInstances":
		return s.runInstances(region, f)
	case "DescribeInstances":
		return s.describeInstances(f)
	case "StopInstances", "TerminateInstances":
		return s.changeState(action, f)
	case "CreateTags":
		return s.createTags(region, f)
	case "DescribeSubnets":
		return describeFixed(list(f, "SubnetId"), SubnetID, "InvalidSubnetID.NotFound", "subnet",
			&response{Subnets: []subnetXML{{SubnetID, "available", VPCID, "10.0.0.0/24", 250, region + "a"}}})
	case "DescribeSecurityGroups":
		return s.describeSecurityGroups(f)
	case "CreateSecurityGroup":
		return s.createSecurityGroup(f)
	case "DeleteSecurityGroup":
		return s.deleteSecurityGroup(f)
	case "AuthorizeSecurityGroupIngress":
		if _, ok := s.groups[f.Get("GroupId")]; !ok {
			return nil, &apiError{"InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", f.Get("GroupId"))}
		}
		return &response{Return: "true"}, nil
	case "CreateKeyPair":
		return s.createKeyPair(f)
	case "DescribeKeyPairs":
		return s.describeKeyPairs(f)
	case "DeleteKeyPair":
		return s.deleteKeyPair(f)
	case "DescribeVolumes":
		return s.describeVolumes(region, f)
	case "DescribeRegions":
		var regions []regionXML
		for _, name := range []string{"eu-west-1", "us-east-1", "us-east-2", "us-west-2"} {
			regions = append(regions, regionXML{name, "ec2." + name + ".amazonaws.com"})
		}
		return &response{Regions: regions}, nil
	}
	return nil, &apiError{"InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action)}
}

func (s *Server) describeImages(region string, f url.Values) (*response, *apiError) {
	ids, owners, filters := list(f, "ImageId"), list(f, "Owner"), filtersOf(f)
	for _, id := range ids {
		if _, err := s.image(region, id); err != nil {
			return nil, err
		}
	}
	out := &response{}
	for _, img := range s.images {
		if img.Region != region || (len(ids) > 0 && !slices.Contains(ids, img.ID)) ||
			(len(owners) > 0 && !slices.Contains(owners, img.OwnerID) && !(slices.Contains(owners, "self") && img.OwnerID == AccountID)) {
			continue
		}
		match, err := matchFilters(filters, func(name string) ([]string, bool) { return s.imageAttr(img, name) })
		if err != nil {
			return nil, err
		}
		if match {
			out.Images = append(out.Images, s.imageXML(img))
		}
	}
	return out, nil
}

func (s *Server) imageAttr(img *Image, name string) ([]string, bool) {
	if k, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, has := s.tags[img.ID][k]; has {
			return []string{v}, true
		}
		return nil, true
	}
	switch name {
	case "name":
		return []string{img.Name}, true
	case "image-id":
		return []string{img.ID}, true
	case "owner-id":
		return []string{img.OwnerID}, true
	case "state":
		return []string{img.State}, true
	case "tag-key":
		var keys []string
		for k := range s.tags[img.ID] {
			keys = append(keys, k)
		}
		return keys, true
	case "architecture":
		return []string{"x86_64"}, true
	case "root-device-type":
		return []string{"ebs"}, true
	case "virtualization-type":
		return []string{"hvm"}, true
	}
	return nil, false
}

func (s *Server) createImage(region string, f url.Values) (*response, *apiError) {
	inst, err := s.instance(f.Get("InstanceId"))
	if err != nil {
		return nil, err
	}
	img, err := s.newImage(region, f.Get("Name"))
	if err != nil {
		return nil, err
	}
	img.SourceInstance, img.SourceImage = inst.id, inst.imageID
	s.newSnapshot(img, false, "")
	for i := 1; f.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if f.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) == "image" {
			s.addTags(img.ID, tagsOf(f, fmt.Sprintf("TagSpecification.%d.Tag", i)))
		}
	}
	return &response{ImageID: img.ID}, nil
}

func (s *Server) copyImage(region string, f url.Values) (*response, *apiError) {
	src, err := s.image(f.Get("SourceRegion"), f.Get("SourceImageId"))
	if err != nil {
		return nil, err
	}
	img, err := s.newImage(region, f.Get("Name"))
	if err != nil {
		return nil, err
	}
	img.SourceImage = src.ID
	img.Encrypted, img.KMSKeyID = src.Encrypted || f.Get("Encrypted") == "true", src.KMSKeyID
	if f.Get("Encrypted") == "true" {
		img.KMSKeyID = f.Get("KmsKeyId")
		if img.KMSKeyID == "" {
			img.KMSKeyID = "alias/aws/ebs"
		}
	}
	s.newSnapshot(img, img.Encrypted, img.KMSKeyID)
	if f.Get("CopyImageTags") == "true" {
		s.addTags(img.ID, s.tags[src.ID])
	}
	return &response{ImageID: img.ID}, nil
}

// newImage registers an available image; names are unique per account and region, as in EC2.
func (s *Server) newImage(region, name string) (*Image, *apiError) {
	if name == "" {
		return nil, &apiError{"MissingParameter", "The request must contain the parameter name"}
	}
	for _, img := range s.images {
		if img.Region == region && img.OwnerID == AccountID && img.Name == name {
			return nil, &apiError{"InvalidAMIName.Duplicate", fmt.Sprintf("AMI name %s is already in use by AMI %s", name, img.ID)}
		}
	}
	img := &Image{ID: s.newID("ami"), Name: name, OwnerID: AccountID, Region: region,
		CreationDate: time.Now().UTC(), State: "available"}
	s.images = append(s.images, img)
	return img, nil
}

func (s *Server) runInstances(region string, f url.Values) (*response, *apiError) {
	img, err := s.image(region, f.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	if sub := f.Get("SubnetId"); sub != "" && sub != SubnetID {
		return nil, &apiError{"InvalidSubnetID.NotFound", fmt.Sprintf("The subnet ID '%s' does not exist", sub)}
	}
	groups := list(f, "SecurityGroupId")
	for _, g := range groups {
		if _, created := s.groups[g]; g != SecurityGroupID && !created {
			return nil, &apiError{"InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", g)}
		}
	}
	if len(groups) == 0 {
		groups = []string{SecurityGroupID}
	}
	inst := &instance{id: s.newID("i"), imageID: img.ID, region: region, state: "running",
		volumeID: s.newID("vol"), keyName: f.Get("KeyName"), instanceType: f.Get("InstanceType"), launched: time.Now().UTC(), groups: groups}
	s.instances[inst.id] = inst
	s.volumes[inst.volumeID] = inst.id
	s.launches = append(s.launches, Launch{inst.id, img.ID, inst.instanceType, inst.keyName})
	for i := 1; f.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if f.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) == "instance" {
			s.addTags(inst.id, tagsOf(f, fmt.Sprintf("TagSpecification.%d.Tag", i)))
		}
	}
	// The caller sees "pending"; every later describe sees "running".
	x := s.instanceXML(inst)
	x.State = &stateXML{0, "pending"}
	return &response{ReservationID: s.newID("r"), OwnerID: AccountID, Instances: []instanceXML{x}}, nil
}

func (s *Server) describeInstances(f url.Values) (*response, *apiError) {
	out := &response{Reservations: []reservationXML{}}
	ids := list(f, "InstanceId")
	for _, id := range ids {
		if _, err := s.instance(id); err != nil {
			return nil, err
		}
	}
	if len(ids) == 0 {
		ids = sortedKeys(s.instances)
	}
	for _, id := range ids {
		inst := s.instances[id]
		match, err := matchFilters(filtersOf(f), func(name string) ([]string, bool) {
			switch name {
			case "instance-state-name":
				return []string{inst.state}, true
			case "instance-id":
				return []string{inst.id}, true
			case "image-id":
				return []string{inst.imageID}, true
			}
			return s.tagAttr(inst.id, name)
		})
		if err != nil {
			return nil, err
		}
		if match {
			out.Reservations = append(out.Reservations, reservationXML{"r-" + strings.TrimPrefix(id, "i-"), AccountID, []instanceXML{s.instanceXML(inst)}})
		}
	}
	return out, nil
}

// changeState stops or terminates at once; the answer shows the transitional state, as EC2 does.
func (s *Server) changeState(action string, f url.Values) (*response, *apiError) {
	out := &response{}
	for _, id := range list(f, "InstanceId") {
		inst, err := s.instance(id)
		if err != nil {
			return nil, err
		}
		prev, next, shown := inst.state, "stopped", "stopping"
		if action == "TerminateInstances" {
			next, shown = "terminated", "shutting-down"
			delete(s.volumes, inst.volumeID)
		} else if prev == "terminated" {
			return nil, &apiError{"IncorrectInstanceState", fmt.Sprintf("This instance '%s' is not in a state from which it can be stopped.", id)}
		}
		inst.state = next
		out.Instances = append(out.Instances, instanceXML{ID: id, Current: &stateXML{stateCode[shown], shown}, Previous: &stateXML{stateCode[prev], prev}})
	}
	return out, nil
}

func (s *Server) createTags(region string, f url.Values) (*response, *apiError) {
	ids := list(f, "ResourceId")
	for _, id := range ids {
		if strings.HasPrefix(id, "ami-") {
			if _, err := s.image(region, id); err != nil {
				return nil, err
			}
		} else if _, isKey := s.keyPairs[id]; isKey {
			continue
		} else if _, isGroup := s.groups[id]; isGroup {
			continue
		} else if strings.HasPrefix(id, "i-") {
			if _, err := s.instance(id); err != nil {
				return nil, err
			}
		}
	}
	for _, id := range ids {
		s.addTags(id, tagsOf(f, "Tag"))
	}
	return &response{Return: "true"}, nil
}

func (s *Server) describeVolumes(region string, f url.Values) (*response, *apiError) {
	ids := list(f, "VolumeId")
	for _, flt := range filtersOf(f) {
		if flt.name == "volume-id" {
			ids = append(ids, flt.values...)
		}
	}
	out := &response{Volumes: []volumeXML{}}
	for _, id := range ids {
		if inst, ok := s.volumes[id]; ok {
			out.Volumes = append(out.Volumes, volumeXML{id, 8, region + "a", "in-use", []attachXML{{id, inst, "/dev/xvda", "attached"}}})
		}
	}
	return out, nil
}

func describeFixed(ids []string, only, code, what string, resp *response) (*response, *apiError) {
	for _, id := range ids {
		if id != only {
			return nil, &apiError{code, fmt.Sprintf("The %s ID '%s' does not exist", what, id)}
		}
	}
	return resp, nil
}

func (s *Server) image(region, id string) (*Image, *apiError) {
	for _, img := range s.images {
		if img.ID == id && img.Region == region {
			return img, nil
		}
	}
	return nil, &apiError{"InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", id)}
}

func (s *Server) instance(id string) (*instance, *apiError) {
	if inst, ok := s.instances[id]; ok {
		return inst, nil
	}
	return nil, &apiError{"InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
}

func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, s.seq)
}

func (s *Server) addTags(id string, tags map[string]string) {
	if s.tags[id] == nil {
		s.tags[id] = map[string]string{}
	}
	for k, v := range tags {
		s.tags[id][k] = v
	}
}

type filter struct {
	name   string
	values []string
}

// matchFilters applies EC2 filter semantics: values of one filter are ORed, filters are ANDed,
// and values may hold the wildcards * and ?.
func matchFilters(filters []filter, attr func(string) ([]string, bool)) (bool, *apiError) {
	for _, flt := range filters {
		have, ok := attr(flt.name)
		if !ok {
			return false, &apiError{"InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", flt.name)}
		}
		if !slices.ContainsFunc(flt.values, func(pattern string) bool {
			return slices.ContainsFunc(have, func(v string) bool { return glob(pattern, v) })
		}) {
			return false, nil
		}
	}
	return true, nil
}

func glob(pattern, v string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(re)
	return regexp.MustCompile("^" + re + "$").MatchString(v)
}

// list reads a Query list: prefix.1, prefix.2, ...
func list(f url.Values, prefix string) []string {
	var out []string
	for i := 1; f.Has(fmt.Sprintf("%s.%d", prefix, i)); i++ {
		out = append(out, f.Get(fmt.Sprintf("%s.%d", prefix, i)))
	}
	return out
}

func filtersOf(f url.Values) []filter {
	var out []filter
	for i := 1; f.Has(fmt.Sprintf("Filter.%d.Name", i)); i++ {
		out = append(out, filter{f.Get(fmt.Sprintf("Filter.%d.Name", i)), list(f, fmt.Sprintf("Filter.%d.Value", i))})
	}
	return out
}

func tagsOf(f url.Values, prefix string) map[string]string {
	out := map[string]string{}
	for i := 1; f.Has(fmt.Sprintf("%s.%d.Key", prefix, i)); i++ {
		out[f.Get(fmt.Sprintf("%s.%d.Key", prefix, i))] = f.Get(fmt.Sprintf("%s.%d.Value", prefix, i))
	}
	return out
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // a Builder does not fail
	return b.String()
}
