// Package prune deregisters the AMIs amichain built that nothing needs any more, and deletes
// their snapshots, in every region. Per image it keeps the current AMI, the last N, those
// younger than a maximum age, every AMI a child's current record was built from, and every AMI
// still in use (instances, launch templates, DescribeImageReferences). Only AMIs owned by the
// account and tagged amichain:image and amichain:fingerprint are ever considered. A pruned
// AMI's index entry is marked first, so no run reuses it.
package prune

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amichain/amichain/core/awsio"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/tree"
)

// The tags Packer puts on every AMI amichain builds (packer/image.pkr.hcl).
const (
	TagImage       = "amichain:image"
	TagFingerprint = "amichain:fingerprint"
)

// DefaultKeepLast is how many of an image's newest AMIs are kept in each region.
const DefaultKeepLast = 3

// batch bounds the ids in one filter or DescribeImageReferences call.
const batch = 100

// EC2 is the part of the EC2 client prune uses; *ec2.Client is the real one.
type EC2 interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	DescribeImageReferences(ctx context.Context, in *ec2.DescribeImageReferencesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImageReferencesOutput, error)
	DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, optFns ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

// Clients returns the EC2 client of a region.
type Clients func(ctx context.Context, region string) (EC2, error)

// Records is the part of the record store prune uses; *record.Store is the real one.
type Records interface {
	Current(ctx context.Context, image string) (*record.Record, error)
	MarkPruned(ctx context.Context, image, fingerprint, region, ami string, at time.Time) (bool, error)
}

// Options say what to keep and whether to act.
type Options struct {
	Tree *tree.Tree
	// Regions to prune in; the regions of the current records are added.
	Regions []string
	// KeepLast keeps each image's newest KeepLast AMIs per region (0 keeps none by count).
	KeepLast int
	// KeepYoungerThan keeps every AMI created less than this long before Now (0: no age rule).
	KeepYoungerThan time.Duration
	Now             time.Time
	// Apply deregisters and deletes; without it prune only reports (a dry run).
	Apply bool
}

// Decision is what prune does with one AMI.
type Decision struct {
	Image, Region, AMI, Name, Fingerprint string
	Created                               time.Time
	Snapshots                             []string
	SizeGiB                               int32
	// Keep says why the AMI stays; empty: it is deleted.
	Keep []string
	// Done says what applying did ("deleted", or what failed); empty in a dry run.
	Done string
}

// Report is every AMI considered, by image, region and age (newest first).
type Report struct {
	Decisions []Decision
	Applied   bool
	// Notes say what prune could not check and relied on instead.
	Notes []string
	// Errs are failures while applying; the rest went on.
	Errs []error
}

// Deleted returns the decisions that delete.
func (r Report) Deleted() []Decision {
	var out []Decision
	for _, d := range r.Decisions {
		if len(d.Keep) == 0 {
			out = append(out, d)
		}
	}
	return out
}

// Err joins what failed while applying.
func (r Report) Err() error { return errors.Join(r.Errs...) }

func (r Report) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tREGION\tAMI\tCREATED\tSNAPSHOTS\tACTION\tWHY")
	var snaps int
	var gib int32
	for _, d := range r.Decisions {
		action, why := "keep", strings.Join(d.Keep, "; ")
		if len(d.Keep) == 0 {
			action, why = "delete", "not needed"
			if !r.Applied {
				action = "would delete"
			}
			if d.Done != "" && d.Done != "deleted" {
				action, why = "failed", d.Done
			}
			snaps += len(d.Snapshots)
			gib += d.SizeGiB
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Image, d.Region, d.AMI, d.Created.UTC().Format("2006-01-02 15:04"),
			dash(strings.Join(d.Snapshots, ",")), action, why)
	}
	w.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	verb := "would delete"
	if r.Applied {
		verb = "deleted"
	}
	fmt.Fprintf(&b, "%s %d AMIs and %d snapshots (%d GiB), kept %d\n", verb, len(r.Deleted()), snaps, gib, len(r.Decisions)-len(r.Deleted()))
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Prune decides, and with Apply acts, in every region.
func Prune(ctx context.Context, clients Clients, recs Records, opts Options) (Report, error) {
	if opts.KeepLast < 0 {
		return Report{}, fmt.Errorf("keep-last %d: want 0 or more", opts.KeepLast)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	current := map[string]*record.Record{}
	regions := slices.Clone(opts.Regions)
	for _, name := range opts.Tree.Names() {
		r, err := recs.Current(ctx, name)
		if err != nil {
			return Report{}, fmt.Errorf("prune: %w", err)
		}
		if r != nil {
			current[name] = r
			regions = append(regions, slices.Collect(maps.Keys(r.AMIs))...)
		}
	}
	slices.Sort(regions)
	regions = slices.Compact(regions)
	rep := Report{Applied: opts.Apply}
	for _, region := range regions {
		api, err := clients(ctx, region)
		if err != nil {
			return Report{}, fmt.Errorf("EC2 client for %s: %w", region, err)
		}
		ds, notes, err := decide(ctx, api, region, current, opts)
		if err != nil {
			return Report{}, err
		}
		rep.Notes = append(rep.Notes, notes...)
		if opts.Apply {
			apply(ctx, api, recs, ds, opts.Now, &rep)
		}
		rep.Decisions = append(rep.Decisions, ds...)
	}
	return rep, nil
}

// decide lists the amichain AMIs of region and says which to keep and why.
func decide(ctx context.Context, api EC2, region string, current map[string]*record.Record, opts Options) ([]Decision, []string, error) {
	images, err := ours(ctx, api, region)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(images))
	for i, img := range images {
		ids[i] = aws.ToString(img.ImageId)
	}
	used, notes, err := inUse(ctx, api, region, ids)
	if err != nil {
		return nil, nil, err
	}
	builtFrom := map[string][]string{} // parent AMI -> children whose current record was built from it
	for name, r := range current {
		if r.Region == region && r.ParentAMI != "" {
			builtFrom[r.ParentAMI] = append(builtFrom[r.ParentAMI], name)
		}
	}
	sizes, err := snapshotSizes(ctx, api, region, images)
	if err != nil {
		return nil, nil, err
	}
	byImage := map[string][]types.Image{}
	for _, img := range images {
		name := tag(img, TagImage)
		byImage[name] = append(byImage[name], img)
	}
	var out []Decision
	for _, name := range slices.Sorted(maps.Keys(byImage)) {
		list := byImage[name]
		sort.SliceStable(list, func(i, j int) bool { return created(list[i]).After(created(list[j])) })
		_, inTree := opts.Tree.Get(name)
		for i, img := range list {
			id := aws.ToString(img.ImageId)
			d := Decision{Image: name, Region: region, AMI: id, Name: aws.ToString(img.Name),
				Fingerprint: tag(img, TagFingerprint), Created: created(img)}
			for _, bd := range img.BlockDeviceMappings {
				if bd.Ebs != nil && aws.ToString(bd.Ebs.SnapshotId) != "" {
					s := aws.ToString(bd.Ebs.SnapshotId)
					d.Snapshots = append(d.Snapshots, s)
					d.SizeGiB += sizes[s]
				}
			}
			if !inTree {
				d.Keep = append(d.Keep, "image not in amichain.yaml: left alone")
			}
			if cur := current[name]; cur != nil && cur.AMIs[region] == id {
				d.Keep = append(d.Keep, "current")
			}
			if kids := builtFrom[id]; len(kids) > 0 {
				slices.Sort(kids)
				d.Keep = append(d.Keep, "current "+strings.Join(kids, ", ")+" built from it")
			}
			if i < opts.KeepLast {
				d.Keep = append(d.Keep, fmt.Sprintf("one of the last %d", opts.KeepLast))
			}
			if age := opts.Now.Sub(d.Created); opts.KeepYoungerThan > 0 && age < opts.KeepYoungerThan {
				d.Keep = append(d.Keep, fmt.Sprintf("younger than %s", opts.KeepYoungerThan))
			}
			if img.State != types.ImageStateAvailable {
				d.Keep = append(d.Keep, "state "+string(img.State))
			}
			d.Keep = append(d.Keep, used[id]...)
			out = append(out, d)
		}
	}
	return out, notes, nil
}

// ours lists the AMIs of the account in region that carry amichain's tags.
func ours(ctx context.Context, api EC2, region string) ([]types.Image, error) {
	in := &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{TagImage}}}}
	var out []types.Image
	for {
		page, err := api.DescribeImages(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list amichain's AMIs in %s: %w", region, awsio.Explain(err, "EC2"))
		}
		for _, img := range page.Images {
			if tag(img, TagImage) != "" && tag(img, TagFingerprint) != "" {
				out = append(out, img)
			}
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}

// inUse says, by AMI, what uses it: instances not terminated, the default and latest versions
// of launch templates, and what DescribeImageReferences finds.
func inUse(ctx context.Context, api EC2, region string, ids []string) (map[string][]string, []string, error) {
	used := map[string][]string{}
	var notes []string
	add := func(id, why string) {
		if !slices.Contains(used[id], why) {
			used[id] = append(used[id], why)
		}
	}
	for start := 0; start < len(ids); start += batch {
		chunk := ids[start:min(start+batch, len(ids))]
		in := &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("image-id"), Values: chunk},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}}}}
		for {
			page, err := api.DescribeInstances(ctx, in)
			if err != nil {
				return nil, nil, fmt.Errorf("find instances of amichain's AMIs in %s: %w", region, awsio.Explain(err, "EC2"))
			}
			for _, r := range page.Reservations {
				for _, i := range r.Instances {
					add(aws.ToString(i.ImageId), "used by instance "+aws.ToString(i.InstanceId))
				}
			}
			if aws.ToString(page.NextToken) == "" {
				break
			}
			in.NextToken = page.NextToken
		}
	}
	lts := &ec2.DescribeLaunchTemplatesInput{}
	for {
		page, err := api.DescribeLaunchTemplates(ctx, lts)
		if err != nil {
			return nil, nil, fmt.Errorf("list launch templates in %s: %w", region, awsio.Explain(err, "EC2"))
		}
		for _, lt := range page.LaunchTemplates {
			vs, err := api.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
				LaunchTemplateId: lt.LaunchTemplateId, Versions: []string{"$Latest", "$Default"}})
			if err != nil {
				return nil, nil, fmt.Errorf("read launch template %s in %s: %w", aws.ToString(lt.LaunchTemplateId), region, awsio.Explain(err, "EC2"))
			}
			for _, v := range vs.LaunchTemplateVersions {
				if v.LaunchTemplateData != nil {
					add(aws.ToString(v.LaunchTemplateData.ImageId), fmt.Sprintf("used by launch template %s (version %d)",
						aws.ToString(lt.LaunchTemplateName), aws.ToInt64(v.VersionNumber)))
				}
			}
		}
		if aws.ToString(page.NextToken) == "" {
			break
		}
		lts.NextToken = page.NextToken
	}
	for start := 0; start < len(ids); start += batch {
		in := &ec2.DescribeImageReferencesInput{ImageIds: ids[start:min(start+batch, len(ids))], IncludeAllResourceTypes: aws.Bool(true)}
		for {
			page, err := api.DescribeImageReferences(ctx, in)
			if unsupported(err) {
				notes = append(notes, fmt.Sprintf("%s: DescribeImageReferences is not offered there: relied on instances and launch templates", region))
				break
			}
			if err != nil {
				return nil, nil, fmt.Errorf("find what uses amichain's AMIs in %s (DescribeImageReferences): %w", region, awsio.Explain(err, "EC2"))
			}
			for _, ref := range page.ImageReferences {
				add(aws.ToString(ref.ImageId), "referenced by "+aws.ToString(ref.Arn))
			}
			if aws.ToString(page.NextToken) == "" {
				break
			}
			in.NextToken = page.NextToken
		}
	}
	// An instance is also named by DescribeImageReferences: say it once.
	for id, whys := range used {
		used[id] = slices.DeleteFunc(whys, func(w string) bool {
			inst, ok := strings.CutPrefix(w, "referenced by arn:aws:ec2:"+region+":")
			if !ok {
				return false
			}
			_, rest, _ := strings.Cut(inst, ":")
			if iid, ok := strings.CutPrefix(rest, "instance/"); ok {
				return slices.Contains(whys, "used by instance "+iid)
			}
			return false
		})
	}
	return used, notes, nil
}

func unsupported(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidAction", "UnsupportedOperation", "InvalidRequest":
		return true
	}
	return false
}

// snapshotSizes reads the size of every snapshot of images, by id.
func snapshotSizes(ctx context.Context, api EC2, region string, images []types.Image) (map[string]int32, error) {
	var ids []string
	for _, img := range images {
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs != nil && aws.ToString(bd.Ebs.SnapshotId) != "" {
				ids = append(ids, aws.ToString(bd.Ebs.SnapshotId))
			}
		}
	}
	out := map[string]int32{}
	for start := 0; start < len(ids); start += batch {
		// A filter, unlike SnapshotIds, does not fail for a snapshot deleted meanwhile.
		in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
			Filters: []types.Filter{{Name: aws.String("snapshot-id"), Values: ids[start:min(start+batch, len(ids))]}}}
		for {
			page, err := api.DescribeSnapshots(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("read the snapshots of amichain's AMIs in %s: %w", region, awsio.Explain(err, "EC2"))
			}
			for _, s := range page.Snapshots {
				out[aws.ToString(s.SnapshotId)] = aws.ToInt32(s.VolumeSize)
			}
			if aws.ToString(page.NextToken) == "" {
				break
			}
			in.NextToken = page.NextToken
		}
	}
	return out, nil
}

// apply deletes what ds does not keep: the index entry is marked first, then the AMI is
// deregistered, then its snapshots deleted. A failure is recorded on its decision and the
// rest goes on.
func apply(ctx context.Context, api EC2, recs Records, ds []Decision, now time.Time, rep *Report) {
	for i := range ds {
		d := &ds[i]
		if len(d.Keep) > 0 {
			continue
		}
		fail := func(err error) {
			d.Done = err.Error()
			rep.Errs = append(rep.Errs, fmt.Errorf("prune %s %s in %s: %w", d.Image, d.AMI, d.Region, err))
		}
		// A run may have made it current since the decision.
		cur, err := recs.Current(ctx, d.Image)
		if err != nil {
			fail(err)
			continue
		}
		if cur != nil && cur.AMIs[d.Region] == d.AMI {
			d.Keep = []string{"became current meanwhile"}
			continue
		}
		if _, err := recs.MarkPruned(ctx, d.Image, d.Fingerprint, d.Region, d.AMI, now); err != nil {
			fail(fmt.Errorf("mark its index entry pruned: %w", err))
			continue
		}
		if _, err := api.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(d.AMI)}); err != nil {
			fail(fmt.Errorf("deregister: %w", awsio.Explain(err, "EC2")))
			continue
		}
		d.Done = "deleted"
		for _, s := range d.Snapshots {
			if _, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)}); err != nil {
				fail(fmt.Errorf("deregistered, but delete snapshot %s: %w (delete it by hand)", s, awsio.Explain(err, "EC2")))
			}
		}
	}
}

func tag(img types.Image, key string) string {
	for _, t := range img.Tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func created(img types.Image) time.Time {
	t, _ := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
	return t
}
