// Package tree holds the image tree: which images exist, what each is built from and which
// image it is built FROM. It is declared once, in amichain.yaml at the repository root.
package tree

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultPath is where the tree is declared, relative to the repository root.
const DefaultPath = "amichain.yaml"

// Upstream is the OS image the root images are built from: either a fixed AMI id, or a lookup
// (owners + name filter, most recent) whose resolved id becomes an input of the root images.
type Upstream struct {
	AMI    string   `yaml:"ami,omitempty" json:"ami,omitempty"`
	Owners []string `yaml:"owners,omitempty" json:"owners,omitempty"`
	Name   string   `yaml:"name,omitempty" json:"name,omitempty"`
	// Container is the same OS as a container image (e.g. debian:bookworm): the root of the
	// tree built as containers. Not an input of any AMI.
	Container string `yaml:"container,omitempty" json:"container,omitempty"`
}

// IsLookup reports whether the upstream AMI is found by a DescribeImages lookup.
func (u Upstream) IsLookup() bool { return u.AMI == "" }

// Image is one machine image of the tree.
type Image struct {
	Name string `yaml:"name" json:"name"`
	// Parent is the image this one is built FROM; empty means the upstream OS image.
	Parent string `yaml:"parent,omitempty" json:"parent,omitempty"`
	// Template is the Packer template, relative to the repository root (under packer/).
	Template string `yaml:"template" json:"template"`
	// Playbook is the Ansible playbook, relative to the repository root (under ansible/).
	Playbook string `yaml:"playbook" json:"playbook"`
	// Verify is an optional playbook of assertions run after Playbook (under ansible/): on the
	// builder instance before its AMI is made, and on the image's container.
	Verify string `yaml:"verify,omitempty" json:"verify,omitempty"`
	// Inputs are extra files or directories the image is made from.
	Inputs []string `yaml:"inputs,omitempty" json:"inputs,omitempty"`
	// Vars are extra Packer variables for this image (e.g. volume_size).
	Vars map[string]string `yaml:"vars,omitempty" json:"vars,omitempty"`
	// Settings are the image's AMI settings (settings.go), merged with the tree's defaults.
	Settings Settings `yaml:",inline" json:"settings,omitzero"`
}

// Tree is a validated image tree. Images are in dependency order: every parent comes before
// its children; siblings keep the order of the file.
type Tree struct {
	Upstream Upstream `yaml:"upstream" json:"upstream"`
	Images   []Image  `yaml:"images" json:"images"`
	// Defaults are the settings of every image that does not set its own.
	Defaults Settings `yaml:"defaults,omitempty" json:"-"`
	// Broken holds, by image name, why an image cannot be built (a template, playbook or
	// input missing): that image and its descendants fail, the rest of the tree builds.
	Broken map[string]error `yaml:"-" json:"-"`
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Load reads the tree declared at path in fsys, validates it, and checks that every template,
// playbook and input exists in fsys. A missing file breaks only its image (see Broken); an
// unreadable or invalid tree is an error.
func Load(fsys fs.FS, path string) (*Tree, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read image tree: %w (create %s at the repository root, see README.md)", err, path)
	}
	t, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	t.Broken = t.checkFiles(fsys, path)
	return t, nil
}

// Parse decodes and validates a tree; name is used in error messages.
func Parse(name string, data []byte) (*Tree, error) {
	var t Tree
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file decodes as io.EOF: let validate say what is missing.
	if err := dec.Decode(&t); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &t, nil
}

func (t *Tree) validate() error {
	u := t.Upstream
	switch {
	case u.AMI != "" && (u.Name != "" || len(u.Owners) > 0):
		return fmt.Errorf("upstream: give either ami or owners+name, not both")
	case u.AMI == "" && (u.Name == "" || len(u.Owners) == 0):
		return fmt.Errorf("upstream: missing: set ami (a fixed AMI id) or owners and name (a lookup)")
	case u.AMI != "" && !strings.HasPrefix(u.AMI, "ami-"):
		return fmt.Errorf("upstream: ami %q is not an AMI id (ami-...)", u.AMI)
	case strings.ContainsAny(u.Container, " \t\n") || strings.HasPrefix(u.Container, "-"):
		return fmt.Errorf("upstream: container %q is not an image reference (e.g. debian:bookworm)", u.Container)
	}
	if len(t.Images) == 0 {
		return fmt.Errorf("images: none declared")
	}
	byName := map[string]Image{}
	for i, img := range t.Images {
		if !validName.MatchString(img.Name) {
			return fmt.Errorf("images[%d]: name %q: use lower-case letters, digits and dashes", i, img.Name)
		}
		if _, dup := byName[img.Name]; dup {
			return fmt.Errorf("image %q is declared twice: rename one of them", img.Name)
		}
		if img.Template == "" {
			return fmt.Errorf("image %q: missing template (a Packer template under packer/)", img.Name)
		}
		if img.Playbook == "" {
			return fmt.Errorf("image %q: missing playbook (an Ansible playbook under ansible/)", img.Name)
		}
		byName[img.Name] = img
	}
	for _, img := range t.Images {
		if img.Parent != "" {
			if _, ok := byName[img.Parent]; !ok {
				return fmt.Errorf("image %q: unknown parent %q (declare it, or leave parent empty to build from upstream)", img.Name, img.Parent)
			}
		}
	}
	order, err := topoSort(t.Images, byName)
	if err != nil {
		return err
	}
	t.Images = order
	if err := t.Defaults.validate("defaults"); err != nil {
		return err
	}
	return t.resolveSettings()
}

// topoSort orders parents before children, keeping file order among ready images, and reports
// a cycle with its path.
func topoSort(images []Image, byName map[string]Image) ([]Image, error) {
	for _, img := range images {
		seen := map[string]bool{img.Name: true}
		path := []string{img.Name}
		for p := img.Parent; p != ""; p = byName[p].Parent {
			path = append(path, p)
			if seen[p] {
				return nil, fmt.Errorf("cycle in the image tree: %s (each image's parent must lead to upstream)", strings.Join(path, " -> "))
			}
			seen[p] = true
		}
	}
	depth := func(name string) int {
		d := 0
		for p := byName[name].Parent; p != ""; p = byName[p].Parent {
			d++
		}
		return d
	}
	out := append([]Image(nil), images...)
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Name) < depth(out[j].Name) })
	return out, nil
}

// CheckFiles reports the first template, playbook or input missing from fsys.
func (t *Tree) CheckFiles(fsys fs.FS, treePath string) error {
	broken := t.checkFiles(fsys, treePath)
	for _, img := range t.Images {
		if err := broken[img.Name]; err != nil {
			return err
		}
	}
	return nil
}

// checkFiles returns, by image, the first of its files that is missing or outside fsys.
func (t *Tree) checkFiles(fsys fs.FS, treePath string) map[string]error {
	out := map[string]error{}
	for _, img := range t.Images {
		check := []struct{ what, path string }{{"template", img.Template}, {"playbook", img.Playbook}}
		if img.Verify != "" {
			check = append(check, struct{ what, path string }{"verify playbook", img.Verify})
		}
		for _, in := range img.Inputs {
			check = append(check, struct{ what, path string }{"input", in})
		}
		for _, c := range check {
			if !fs.ValidPath(c.path) {
				out[img.Name] = fmt.Errorf("%s: image %q: %s %q must be a relative path inside the repository", treePath, img.Name, c.what, c.path)
				break
			}
			if _, err := fs.Stat(fsys, c.path); err != nil {
				out[img.Name] = fmt.Errorf("%s: image %q: %s %s: %w (add the file or fix the path)", treePath, img.Name, c.what, c.path, err)
				break
			}
		}
	}
	return out
}

// Get returns the named image.
func (t *Tree) Get(name string) (Image, bool) {
	for _, img := range t.Images {
		if img.Name == name {
			return img, true
		}
	}
	return Image{}, false
}

// Children returns the images built directly FROM name, in tree order.
func (t *Tree) Children(name string) []Image {
	var out []Image
	for _, img := range t.Images {
		if img.Parent == name && name != "" {
			out = append(out, img)
		}
	}
	return out
}

// Ancestors returns the names of name's parent, grandparent, ..., nearest first.
func (t *Tree) Ancestors(name string) []string {
	var out []string
	img, _ := t.Get(name)
	for p := img.Parent; p != ""; {
		out = append(out, p)
		pi, _ := t.Get(p)
		p = pi.Parent
	}
	return out
}

// Names returns every image name in tree order.
func (t *Tree) Names() []string {
	out := make([]string, len(t.Images))
	for i, img := range t.Images {
		out[i] = img.Name
	}
	return out
}
