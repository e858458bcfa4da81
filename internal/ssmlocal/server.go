// Package ssmlocal is an in-process SSM Parameter Store for tests. It speaks SSM's JSON
// protocol (POST /, X-Amz-Target: AmazonSSM.<Action>, application/x-amz-json-1.1, errors as
// {"__type": code, "message": ...} with HTTP 400) to the real SDK client: PutParameter,
// GetParameter and GetParameters, one store per region (the region of the request signature).
package ssmlocal

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// AccountID is the fake account the parameter ARNs name.
const AccountID = "123456789012"

// Parameter is one stored parameter at its latest version.
type Parameter struct {
	Name, Type, DataType, Value, Description string
	Version                                  int64
	Modified                                 time.Time
}

// Options configures a Server; the zero value works.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Region is assumed when a request's signature names none; default "us-east-1".
	Region string
	// ImageExists, when set, validates an aws:ec2:image value as SSM does: asynchronously,
	// after PutParameter answered, so a value naming no AMI of the region is never stored
	// although the call succeeded. Nil accepts any well-formed AMI id.
	ImageExists func(region, id string) bool
}

// Server is a running fake SSM endpoint, safe for concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server

	mu       sync.Mutex
	params   map[string]map[string]*Parameter // region -> name -> parameter
	calls    []string
	failures map[string][]apiError
}

type apiError struct {
	Code    string `json:"__type"`
	Message string `json:"message"`
}

// Start listens and serves until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssmlocal: listen on %s: %w", opts.Addr, err)
	}
	s := &Server{opts: opts, ln: ln, params: map[string]map[string]*Parameter{}, failures: map[string][]apiError{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// URL is the endpoint to give the SDK (BaseEndpoint).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Get returns the parameter in region, if any.
func (s *Server) Get(region, name string) (Parameter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.params[region][name]
	if !ok {
		return Parameter{}, false
	}
	return *p, true
}

// Set stores a parameter directly, as another tool (or a person) would have.
func (s *Server) Set(region string, p Parameter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store(region, p)
}

// Calls lists the actions received, as "Action region", in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// FailNext makes the next call of action fail with the given SSM error code.
func (s *Server) FailNext(action, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[action] = append(s.failures[action], apiError{code, message})
}

var credentialRegion = regexp.MustCompile(`Credential=[^/,]+/\d+/([^/,]+)/`)

// ServeHTTP answers one JSON request. Bodies are never logged: a SecureString carries secrets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	if r.Method != http.MethodPost || !ok {
		writeJSON(w, http.StatusBadRequest, apiError{"UnknownOperationException", "want POST with X-Amz-Target: AmazonSSM.<Action>"})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		writeJSON(w, http.StatusBadRequest, apiError{"SerializationException", fmt.Sprintf("content type %q: want application/x-amz-json-1.1", ct)})
		return
	}
	region := s.opts.Region
	if m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		region = m[1]
	}
	var in request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"SerializationException", "body is not a JSON object: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, action+" "+region)
	out, aerr := s.handle(action, region, in)
	s.mu.Unlock()
	if aerr != nil {
		w.Header().Set("X-Amzn-ErrorType", aerr.Code)
		writeJSON(w, http.StatusBadRequest, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// request holds the fields of the actions served; others are ignored, as unknown members are.
type request struct {
	Name, Value, Type, DataType, Description string
	Overwrite                                bool
	Names                                    []string
	Tags                                     []struct{ Key, Value string }
	WithDecryption                           bool
}

type paramJSON struct {
	Name             string  `json:"Name"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
	LastModifiedDate float64 `json:"LastModifiedDate"`
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
}

var (
	validName = regexp.MustCompile(`^/?[a-zA-Z0-9_.\-/]+$`)
	validAMI  = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
)

func (s *Server) handle(action, region string, in request) (any, *apiError) {
	if q := s.failures[action]; len(q) > 0 {
		s.failures[action] = q[1:]
		return nil, &q[0]
	}
	switch action {
	case "PutParameter":
		return s.put(region, in)
	case "GetParameter":
		p, ok := s.params[region][in.Name]
		if !ok {
			return nil, &apiError{"ParameterNotFound", fmt.Sprintf("Parameter %s not found.", in.Name)}
		}
		return map[string]any{"Parameter": s.paramJSON(region, p)}, nil
	case "GetParameters":
		if len(in.Names) == 0 || len(in.Names) > 10 {
			return nil, &apiError{"ValidationException", fmt.Sprintf("1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10 (got %d)", len(in.Names))}
		}
		found, invalid := []paramJSON{}, []string{}
		for _, n := range in.Names {
			if p, ok := s.params[region][n]; ok {
				found = append(found, s.paramJSON(region, p))
			} else {
				invalid = append(invalid, n)
			}
		}
		return map[string]any{"Parameters": found, "InvalidParameters": invalid}, nil
	}
	return nil, &apiError{"UnknownOperationException", "ssmlocal does not serve " + action}
}

func (s *Server) put(region string, in request) (any, *apiError) {
	if !validName.MatchString(in.Name) || len(in.Name) > 2048 || strings.Contains(in.Name, "//") ||
		strings.HasPrefix(strings.ToLower(strings.TrimPrefix(in.Name, "/")), "aws") ||
		strings.HasPrefix(strings.ToLower(strings.TrimPrefix(in.Name, "/")), "ssm") {
		return nil, &apiError{"ValidationException", fmt.Sprintf("Parameter name %q: only a mix of letters, numbers and the symbols .-_/ is allowed, and it must not begin with aws or ssm", in.Name)}
	}
	if in.Value == "" {
		return nil, &apiError{"ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1"}
	}
	typ := in.Type
	old, exists := s.params[region][in.Name]
	if typ == "" && exists {
		typ = old.Type
	}
	switch typ {
	case "String", "StringList", "SecureString":
	case "":
		return nil, &apiError{"ValidationException", "A parameter type is required when you create a parameter."}
	default:
		return nil, &apiError{"ValidationException", fmt.Sprintf("1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", typ)}
	}
	dataType := in.DataType
	if dataType == "" {
		dataType = "text"
	}
	switch dataType {
	case "text":
	case "aws:ec2:image":
		if typ != "String" {
			return nil, &apiError{"ValidationException", "The aws:ec2:image data type is only supported for String parameters."}
		}
		if !validAMI.MatchString(in.Value) {
			return nil, &apiError{"ValidationException", fmt.Sprintf("The value %q is not a valid image ID for the aws:ec2:image data type.", in.Value)}
		}
	default:
		return nil, &apiError{"ValidationException", fmt.Sprintf("The data type %q is not supported: use text, aws:ec2:image or aws:ssm:integration.", dataType)}
	}
	if exists && !in.Overwrite {
		return nil, &apiError{"ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true."}
	}
	if exists && len(in.Tags) > 0 {
		return nil, &apiError{"ValidationException", "Tags can only be set when a parameter is created; use AddTagsToResource to tag an existing one."}
	}
	version := int64(1)
	if exists {
		version = old.Version + 1
	}
	if dataType == "aws:ec2:image" && s.opts.ImageExists != nil && !s.opts.ImageExists(region, in.Value) {
		// The answer comes before the validation, which fails: nothing is stored.
		return map[string]any{"Version": version, "Tier": "Standard"}, nil
	}
	p := s.store(region, Parameter{Name: in.Name, Type: typ, DataType: dataType, Value: in.Value, Description: in.Description})
	return map[string]any{"Version": p.Version, "Tier": "Standard"}, nil
}

// store writes p as the next version of its name.
func (s *Server) store(region string, p Parameter) *Parameter {
	if s.params[region] == nil {
		s.params[region] = map[string]*Parameter{}
	}
	if old, ok := s.params[region][p.Name]; ok {
		p.Version = old.Version
	}
	p.Version++
	if p.DataType == "" {
		p.DataType = "text"
	}
	p.Modified = time.Now().UTC()
	s.params[region][p.Name] = &p
	return &p
}

func (s *Server) paramJSON(region string, p *Parameter) paramJSON {
	return paramJSON{Name: p.Name, Type: p.Type, Value: p.Value, Version: p.Version, DataType: p.DataType,
		LastModifiedDate: float64(p.Modified.UnixMilli()) / 1000,
		ARN:              fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", region, AccountID, strings.TrimPrefix(p.Name, "/"))}
}

// Names lists the parameters of region, sorted.
func (s *Server) Names(region string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.params[region] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client is gone
}
