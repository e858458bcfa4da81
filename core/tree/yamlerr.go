package tree

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type tree\.(\w+)$`)
	atLine       = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// what names each decoded type in messages, with the fields it accepts.
var what = map[string]struct {
	noun string
	typ  reflect.Type
}{
	"Tree":     {"the top level", reflect.TypeOf(Tree{})},
	"Image":    {"an image", reflect.TypeOf(Image{})},
	"Upstream": {"upstream", reflect.TypeOf(Upstream{})},
	"Settings": {"defaults", reflect.TypeOf(Settings{})},
}

// yamlError rewrites a yaml.v3 decoding error as "FILE:LINE: what is wrong", naming the
// valid fields for an unknown one (a typo such as "parnet").
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if m := atLine.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%s:%s: %s (not valid YAML)", name, m[1], m[2])
		}
		return fmt.Errorf("%s: %w (not valid YAML)", name, err)
	}
	var msgs []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			w := what[m[3]]
			msgs = append(msgs, fmt.Sprintf("%s:%s: unknown field %q in %s (valid fields: %s)", name, m[1], m[2], w.noun, strings.Join(fields(w.typ), ", ")))
			continue
		}
		if m := atLine.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("%s:%s: %s", name, m[1], m[2]))
			continue
		}
		msgs = append(msgs, name+": "+e)
	}
	return errors.New(strings.Join(msgs, "\n"))
}

func fields(t reflect.Type) []string {
	if t == nil {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if strings.HasSuffix(t.Field(i).Tag.Get("yaml"), ",inline") {
			out = append(out, fields(t.Field(i).Type)...)
			continue
		}
		if tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return out
}
