package fingerprint

import (
	"fmt"
	"sort"
	"strings"
)

// Diff explains, one sorted line per input, why new differs from old:
// "ansible/roles/nginx/tasks/main.yml changed", "parent AMI changed (ami-1 -> ami-2)",
// "packer version changed (1.11.2 -> 1.12.0)", ... It is empty when they are the same.
func Diff(old, new []Input) []string {
	before := map[string]string{}
	for _, in := range old {
		before[in.Name] = in.Digest
	}
	after := map[string]string{}
	for _, in := range new {
		after[in.Name] = in.Digest
	}
	var out []string
	for name, was := range before {
		is, ok := after[name]
		switch {
		case !ok:
			out = append(out, describe(name, "removed", was, ""))
		case is != was:
			out = append(out, describe(name, "changed", was, is))
		}
	}
	for name, is := range after {
		if _, ok := before[name]; !ok {
			out = append(out, describe(name, "added", "", is))
		}
	}
	sort.Strings(out)
	return out
}

// describe says what happened to one input; values are shown where they are readable.
func describe(name, what, was, is string) string {
	values := func() string {
		switch what {
		case "changed":
			return fmt.Sprintf(" (%s -> %s)", was, is)
		case "added":
			return fmt.Sprintf(" (%s)", is)
		}
		return fmt.Sprintf(" (was %s)", was)
	}
	switch {
	case name == "scheme":
		return "fingerprint scheme changed"
	case name == "image":
		return "image entry in amichain.yaml " + what
	case name == "parent-ami":
		return "parent AMI " + what + values()
	case strings.HasPrefix(name, "file:"):
		return strings.TrimPrefix(name, "file:") + " " + what
	case strings.HasPrefix(name, "dir:"):
		if what == "changed" {
			return strings.TrimPrefix(name, "dir:") + "/ listing changed"
		}
		return strings.TrimPrefix(name, "dir:") + "/ " + what
	case strings.HasPrefix(name, "tool:"):
		return toolLabel(strings.TrimPrefix(name, "tool:")) + " " + what + values()
	}
	return name + " " + what
}

// toolLabel turns a tool input's name back into words: "packer" is "packer version",
// "packer:sum" is "packer sum".
func toolLabel(s string) string {
	tool, field, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return tool + " version"
	case field == "":
		return tool
	}
	return tool + " " + field
}
