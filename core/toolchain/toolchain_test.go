package toolchain_test

import (
	"os"
	"testing"
	"testing/fstest"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/toolchain"
)

const pins = "PACKER_VERSION=1.12.0\nPACKER_PLUGIN_AMAZON_VERSION=1.3.6\nPACKER_PLUGIN_ANSIBLE_VERSION=1.1.2\nANSIBLE_CORE_VERSION=2.14.18\n"

func TestLoad(t *testing.T) {
	tests := []struct {
		name, data, err string
	}{
		{name: "pins", data: "# comment\n\n" + pins},
		{name: "missing pin", data: "PACKER_VERSION=1.12.0\n", err: "PACKER_PLUGIN_AMAZON_VERSION is not set"},
		{name: "not key=value", data: pins + "export X=1\n", err: `toolchain.env:5: want KEY=VALUE, got "export X=1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := toolchain.Load(fstest.MapFS{"toolchain.env": {Data: []byte(tc.data)}}, "toolchain.env")
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, v["PACKER_VERSION"], "1.12.0")
		})
	}
}

// The repository's own pins must load: install-tools and the Dagger toolchain read them too.
func TestRepositoryPins(t *testing.T) {
	v, err := toolchain.Load(os.DirFS("../.."), toolchain.DefaultPath)
	assert.NilError(t, err)
	assert.Equal(t, v["PACKER_PLUGIN_AMAZON_VERSION"], "1.3.6")
}
