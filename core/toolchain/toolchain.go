// Package toolchain reads the pinned tool versions from toolchain.env.
package toolchain

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// DefaultPath is where the pins live, relative to the repository root.
const DefaultPath = "toolchain.env"

var line = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(\S+)$`)

// Versions maps a pin's name (PACKER_VERSION, ...) to its value.
type Versions map[string]string

// Load reads the KEY=VALUE pins at path; comments and blank lines are skipped.
func Load(fsys fs.FS, path string) (Versions, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read tool pins: %w", err)
	}
	v := Versions{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		m := line.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, s)
		}
		v[m[1]] = m[2]
	}
	for _, k := range []string{"PACKER_VERSION", "PACKER_PLUGIN_AMAZON_VERSION", "PACKER_PLUGIN_ANSIBLE_VERSION", "ANSIBLE_CORE_VERSION"} {
		if v[k] == "" {
			return nil, fmt.Errorf("%s: %s is not set", path, k)
		}
	}
	return v, nil
}
