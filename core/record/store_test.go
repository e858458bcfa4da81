package record_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/s3test"
)

type server struct {
	name  string
	start func(testing.TB) *s3test.Server
}

func servers() []server {
	return []server{
		{"gofakes3", s3test.StartFake},
		{"versitygw", s3test.StartVersitygw},
	}
}

// env is one scenario's view of a shared server: its own prefix and a store talking directly.
type env struct {
	srv    *s3test.Server
	prefix string
	store  *record.Store
}

func (e *env) storeAt(client *s3.Client) *record.Store {
	return record.NewStore(client, record.Config{Bucket: e.srv.Bucket, Prefix: e.prefix})
}

func (e *env) key(rel string) string { return e.prefix + "/" + rel }

func (e *env) url(rel string) string { return "s3://" + e.srv.Bucket + "/" + e.key(rel) }

func (e *env) get(t *testing.T, rel string) string {
	t.Helper()
	out, err := e.srv.Client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &e.srv.Bucket, Key: aws.String(e.key(rel))})
	assert.NilError(t, err)
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	assert.NilError(t, err)
	return string(data)
}

func (e *env) put(t *testing.T, rel, body string) {
	t.Helper()
	_, err := e.srv.Client.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: &e.srv.Bucket, Key: aws.String(e.key(rel)), Body: strings.NewReader(body),
	})
	assert.NilError(t, err)
}

func (e *env) exists(t *testing.T, rel string) bool {
	t.Helper()
	_, err := e.srv.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &e.srv.Bucket, Key: aws.String(e.key(rel))})
	return err == nil
}

func (e *env) delete(t *testing.T, rel string) {
	t.Helper()
	_, err := e.srv.Client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &e.srv.Bucket, Key: aws.String(e.key(rel))})
	assert.NilError(t, err)
}

// assertKeys checks the scenario's prefix holds exactly the keys given.
func (e *env) assertKeys(t *testing.T, rels ...string) {
	t.Helper()
	want := []string{}
	for _, r := range rels {
		want = append(want, e.key(r))
	}
	got := append([]string{}, e.srv.Keys(t, e.prefix+"/")...) // [] rather than nil when empty
	assert.DeepEqual(t, got, want)
}

// assertErr checks err says what it must, and never leaks the server's secret key.
func (e *env) assertErr(t *testing.T, err error, contains ...string) {
	t.Helper()
	assert.Assert(t, err != nil, "expected an error")
	for _, c := range contains {
		assert.Assert(t, is.Contains(err.Error(), c))
	}
	assert.Assert(t, !strings.Contains(err.Error(), e.srv.SecretKey), "secret key in error: %v", err)
}

func rec(image, fp, ami string) record.Record {
	return record.Record{
		Scheme:      record.Scheme,
		Image:       image,
		Fingerprint: fp,
		Region:      "us-east-1",
		AMIs:        map[string]string{"us-east-1": ami, "eu-west-1": "ami-0e0e0e0e0e0e0e0e0"},
		Inputs:      []fingerprint.Input{{Name: "image", Digest: "sha256:" + fp}},
		Parent:      "base",
		ParentAMI:   "ami-0b0b0b0b0b0b0b0b0",
		Commit:      "0123456789abcdef",
		Branch:      "main",
		BuiltAt:     time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		Tools:       map[string]string{"packer": "1.12.0"},
	}
}

func save(t *testing.T, s *record.Store, recs ...record.Record) {
	t.Helper()
	for _, r := range recs {
		assert.NilError(t, s.Save(t.Context(), r))
	}
}

func assertCurrent(t *testing.T, s *record.Store, want record.Record) {
	t.Helper()
	got, err := s.Current(t.Context(), want.Image)
	assert.NilError(t, err)
	assert.Assert(t, got != nil, "no current record for %s", want.Image)
	assert.DeepEqual(t, *got, want)
}

func TestStore(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"round trip", testRoundTrip},
		{"key layout and txt", testLayout},
		{"racing saves", testRace},
		{"stale current is retried", testStaleCurrent},
		{"txt follows the current record", testTextFollowsCurrent},
		{"corrupt objects", testCorrupt},
		{"invalid records are refused", testInvalid},
		{"500s then recovery", testFaultsRecover},
		{"persistent 500s", testFaultsPersist},
		{"server down", testServerDown},
		{"no such bucket", testNoBucket},
		{"wrong credentials", testWrongCredentials},
		{"no ACL, conditional headers", testHeaders},
	}
	for _, srv := range servers() {
		t.Run(srv.name, func(t *testing.T) {
			server := srv.start(t)
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					prefix := fmt.Sprintf("case%02d/records", i)
					tc.run(t, &env{srv: server, prefix: prefix,
						store: record.NewStore(server.Client, record.Config{Bucket: server.Bucket, Prefix: prefix})})
				})
			}
		})
	}
}

func testRoundTrip(t *testing.T, e *env) {
	ctx := t.Context()
	got, err := e.store.Current(ctx, "web")
	assert.NilError(t, err)
	assert.Assert(t, got == nil, "current of an image never saved: %+v", got)
	list, err := e.store.List(ctx)
	assert.NilError(t, err)
	assert.Equal(t, len(list), 0)

	base := rec("base", "fb1", "ami-0000000000000000a")
	web1 := rec("web", "fw1", "ami-0000000000000001a")
	web2 := rec("web", "fw2", "ami-0000000000000001b")
	// "web-canary.json" sorts before "web.json" as a key but after "web" as a name.
	canary := rec("web-canary", "fc1", "ami-0000000000000002a")
	save(t, e.store, base, web1, canary, web2)

	assertCurrent(t, e.store, web2)
	for _, want := range []record.Record{web1, web2} {
		got, err := e.store.ByFingerprint(ctx, "web", want.Fingerprint)
		assert.NilError(t, err)
		assert.Assert(t, got != nil, "no record for fingerprint %s", want.Fingerprint)
		assert.DeepEqual(t, *got, want)
	}
	got, err = e.store.ByFingerprint(ctx, "web", "never-built")
	assert.NilError(t, err)
	assert.Assert(t, got == nil)

	list, err = e.store.List(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, list, []record.Record{base, web2, canary})

	// Saving a record already indexed (a revert) keeps its entry and makes it current again.
	save(t, e.store, web1)
	assertCurrent(t, e.store, web1)
	assert.Equal(t, e.get(t, "web.txt"), "ami-0000000000000001a\n")

	// A second build of the same content keeps the first index entry; it still becomes current.
	rebuilt := rec("web", web1.Fingerprint, "ami-0000000000000001c")
	save(t, e.store, rebuilt)
	got, err = e.store.ByFingerprint(ctx, "web", web1.Fingerprint)
	assert.NilError(t, err)
	assert.DeepEqual(t, *got, web1)
	assertCurrent(t, e.store, rebuilt)
}

func testLayout(t *testing.T, e *env) {
	tests := []struct {
		name   string
		prefix string
	}{
		{"with prefix", e.prefix},
		{"slashes trimmed", "/" + e.prefix + "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := record.NewStore(e.srv.Client, record.Config{Bucket: e.srv.Bucket, Prefix: tc.prefix})
			save(t, s, rec("worker", "fk1", "ami-0123456789abcdef0"))
			assert.Equal(t, e.get(t, "worker.txt"), "ami-0123456789abcdef0\n")
			head, err := e.srv.Client.HeadObject(t.Context(), &s3.HeadObjectInput{
				Bucket: &e.srv.Bucket, Key: aws.String(e.key("images/worker.json"))})
			assert.NilError(t, err)
			assert.Equal(t, aws.ToString(head.ContentType), "application/json")
			e.assertKeys(t, "images/worker.json", "index/worker/fk1.json", "worker.txt")
			for _, rel := range []string{"images/worker.json", "index/worker/fk1.json", "worker.txt"} {
				e.delete(t, rel) // so the next row proves its own keys
			}
		})
	}
	t.Run("empty prefix", func(t *testing.T) {
		s := record.NewStore(e.srv.Client, record.Config{Bucket: e.srv.Bucket})
		save(t, s, rec("noprefix", "fn1", "ami-0123456789abcdef1"))
		for _, key := range []string{"images/noprefix.json", "index/noprefix/fn1.json", "noprefix.txt"} {
			_, err := e.srv.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &e.srv.Bucket, Key: aws.String(key)})
			assert.NilError(t, err, key)
		}
	})
}

func testRace(t *testing.T, e *env) {
	for round := range 5 {
		a := rec("web", fmt.Sprintf("race%da", round), fmt.Sprintf("ami-00000000000000%02da", round))
		b := rec("web", fmt.Sprintf("race%db", round), fmt.Sprintf("ami-00000000000000%02db", round))
		errs := make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, r := range []record.Record{a, b} {
			wg.Go(func() {
				<-start
				errs[i] = e.store.Save(t.Context(), r)
			})
		}
		close(start)
		wg.Wait()
		assert.NilError(t, errs[0])
		assert.NilError(t, errs[1])

		for _, want := range []record.Record{a, b} {
			got, err := e.store.ByFingerprint(t.Context(), "web", want.Fingerprint)
			assert.NilError(t, err)
			assert.Assert(t, got != nil, "index entry of %s lost", want.Fingerprint)
			assert.DeepEqual(t, *got, want)
		}
		cur, err := e.store.Current(t.Context(), "web")
		assert.NilError(t, err)
		assert.Assert(t, cur != nil)
		assert.Assert(t, cur.Fingerprint == a.Fingerprint || cur.Fingerprint == b.Fingerprint, "current is %s", cur.Fingerprint)
		assert.Equal(t, e.get(t, "web.txt"), cur.AMI()+"\n")
	}
}

// interleave runs save (with the direct store) once, just before the proxy passes on the
// first PUT of rel, as if another run wrote between our read and our write.
func interleave(t *testing.T, e *env, p *s3test.Proxy, rel string, save func()) {
	var once sync.Once
	p.OnRequest(func(r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/"+e.srv.Bucket+"/"+e.key(rel) {
			once.Do(save)
		}
	})
}

func countPuts(p *s3test.Proxy, path string) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == http.MethodPut && r.Path == path {
			n++
		}
	}
	return n
}

func testStaleCurrent(t *testing.T, e *env) {
	p := s3test.StartProxy(t, e.srv.Endpoint)
	viaProxy := e.storeAt(e.srv.ClientAt(p.URL))
	old := rec("web", "f0", "ami-00000000000000000")
	mine := rec("web", "f1", "ami-00000000000000001")
	theirs := rec("web", "f2", "ami-00000000000000002")
	save(t, e.store, old)
	interleave(t, e, p, "images/web.json", func() { save(t, e.store, theirs) })

	save(t, viaProxy, mine)

	// Our first conditional PUT carried the ETag of old and must have been refused.
	assert.Equal(t, countPuts(p, "/"+e.srv.Bucket+"/"+e.key("images/web.json")), 2)
	assertCurrent(t, e.store, mine)
	assert.Equal(t, e.get(t, "web.txt"), mine.AMI()+"\n")
	for _, r := range []record.Record{old, mine, theirs} {
		got, err := e.store.ByFingerprint(t.Context(), "web", r.Fingerprint)
		assert.NilError(t, err)
		assert.Assert(t, got != nil, "index entry of %s lost", r.Fingerprint)
	}
}

func testTextFollowsCurrent(t *testing.T, e *env) {
	p := s3test.StartProxy(t, e.srv.Endpoint)
	viaProxy := e.storeAt(e.srv.ClientAt(p.URL))
	mine := rec("web", "f1", "ami-00000000000000001")
	theirs := rec("web", "f2", "ami-00000000000000002")
	// Their whole save lands after our current record, before our .txt.
	interleave(t, e, p, "web.txt", func() { save(t, e.store, theirs) })

	save(t, viaProxy, mine)

	assertCurrent(t, e.store, theirs)
	assert.Equal(t, e.get(t, "web.txt"), theirs.AMI()+"\n")
}

func testCorrupt(t *testing.T, e *env) {
	valid := `{"scheme":1,"image":"web","fingerprint":"f1","region":"us-east-1","amis":{"us-east-1":"ami-0123"},` +
		`"inputs":[],"parent_ami":"","built_at":"2025-06-01T12:00:00Z","tools":{}}`
	tests := []struct {
		name string
		body string
		want string
	}{
		{"not JSON", "<html>oops</html>", "invalid character"},
		{"truncated", valid[:40], "unexpected EOF"},
		{"unknown field", strings.Replace(valid, `"tools"`, `"colour":"red","tools"`, 1), `unknown field "colour"`},
		{"trailing data", valid + `{}`, "data after the JSON object"},
		{"missing fields", `{"scheme":1,"image":"web"}`, `fingerprint ""`},
		{"other image", strings.Replace(valid, `"web"`, `"worker"`, 1), `it is for image "worker"`},
		{"newer scheme", strings.Replace(valid, `"scheme":1`, `"scheme":99`, 1), "upgrade amichain"},
		{"no AMI for the region", strings.Replace(valid, `"us-east-1":`, `"eu-west-1":`, 1), "no AMI id for its build region"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			image := fmt.Sprintf("web%d", i)
			body := strings.ReplaceAll(tc.body, `"web"`, fmt.Sprintf("%q", image))
			e.put(t, "images/"+image+".json", body)

			_, err := e.store.Current(t.Context(), image)
			e.assertErr(t, err, e.url("images/"+image+".json"), tc.want, "delete it to let amichain rebuild and rewrite it")

			err = e.store.Save(t.Context(), rec(image, "fnew", "ami-0abc"))
			e.assertErr(t, err, e.url("images/"+image+".json"), tc.want)
			assert.Equal(t, e.get(t, "images/"+image+".json"), body, "corrupt record was overwritten")

			assert.Assert(t, !e.exists(t, "index/"+image+"/fnew.json"), "index entry written despite the corrupt record")

			_, err = e.store.List(t.Context())
			e.assertErr(t, err, e.url("images/"+image+".json"))

			// As the error says: deleting it lets the next save write a fresh record.
			e.delete(t, "images/"+image+".json")
			fresh := rec(image, "fnew", "ami-0abc")
			save(t, e.store, fresh)
			assertCurrent(t, e.store, fresh)
		})
	}
	t.Run("index entry of another fingerprint", func(t *testing.T) {
		e.put(t, "index/web/fx.json", valid)
		_, err := e.store.ByFingerprint(t.Context(), "web", "fx")
		e.assertErr(t, err, e.url("index/web/fx.json"), `fingerprint "f1", stored under "fx"`)
	})
}

func testInvalid(t *testing.T, e *env) {
	tests := []struct {
		name   string
		change func(r *record.Record)
		want   string
	}{
		{"image name", func(r *record.Record) { r.Image = "Web/../x" }, `record image "Web/../x"`},
		{"no fingerprint", func(r *record.Record) { r.Fingerprint = "" }, `fingerprint ""`},
		{"fingerprint with a slash", func(r *record.Record) { r.Fingerprint = "a/b" }, `fingerprint "a/b"`},
		{"no region", func(r *record.Record) { r.Region = "" }, `region ""`},
		{"no AMI in the build region", func(r *record.Record) { r.Region = "ap-south-1" }, "no AMI id for its build region ap-south-1"},
		{"not an AMI id", func(r *record.Record) { r.AMIs["us-east-1"] = "snap-0123" }, `amis[us-east-1] = "snap-0123" is not an AMI id`},
		{"no scheme", func(r *record.Record) { r.Scheme = 0 }, "scheme 0: missing"},
		{"newer scheme", func(r *record.Record) { r.Scheme = record.Scheme + 1 }, "upgrade amichain"},
		{"parent AMI", func(r *record.Record) { r.ParentAMI = "base" }, `parent_ami "base"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rec("web", "f1", "ami-0123456789abcdef0")
			tc.change(&r)
			err := e.store.Save(t.Context(), r)
			e.assertErr(t, err, "refusing to save", tc.want)
			e.assertKeys(t)
		})
	}
}

func testFaultsRecover(t *testing.T, e *env) {
	p := s3test.StartProxy(t, e.srv.Endpoint)
	viaProxy := e.storeAt(e.srv.ClientAt(p.URL))
	r := rec("web", "f1", "ami-0123456789abcdef0")

	p.FailNext(2) // the SDK makes 3 attempts
	save(t, viaProxy, r)
	p.FailNext(2)
	assertCurrent(t, viaProxy, r)

	failed := 0
	for _, req := range p.Requests() {
		if req.Failed {
			failed++
		}
	}
	assert.Equal(t, failed, 4)
	e.assertKeys(t, "images/web.json", "index/web/f1.json", "web.txt")
}

func testFaultsPersist(t *testing.T, e *env) {
	p := s3test.StartProxy(t, e.srv.Endpoint)
	viaProxy := e.storeAt(e.srv.ClientAt(p.URL))
	p.FailNext(1000)
	err := viaProxy.Save(t.Context(), rec("web", "f1", "ami-0123456789abcdef0"))
	e.assertErr(t, err, e.url("images/web.json"), "the S3 server keeps failing", "InternalError")
	e.assertKeys(t)
}

func testServerDown(t *testing.T, e *env) {
	down := e.storeAt(e.srv.ClientAt(s3test.ClosedEndpoint(t)))
	const want = "cannot reach the S3 endpoint: check --endpoint and the network"
	err := down.Save(t.Context(), rec("web", "f1", "ami-0123456789abcdef0"))
	e.assertErr(t, err, e.url("images/web.json"), want)
	_, err = down.Current(t.Context(), "web")
	e.assertErr(t, err, e.url("images/web.json"), want)
	_, err = down.List(t.Context())
	e.assertErr(t, err, e.url("images/"), want)
}

func testNoBucket(t *testing.T, e *env) {
	s := record.NewStore(e.srv.Client, record.Config{Bucket: "no-such-bucket", Prefix: "p"})
	err := s.Save(t.Context(), rec("web", "f1", "ami-0123456789abcdef0"))
	e.assertErr(t, err, "s3://no-such-bucket/p/images/web.json", "create it or fix --bucket")
	_, err = s.List(t.Context())
	e.assertErr(t, err, "s3://no-such-bucket/p/images/", "create it or fix --bucket")
}

func testWrongCredentials(t *testing.T, e *env) {
	if !e.srv.ChecksSignatures {
		t.Skip("this server accepts any credentials")
	}
	tests := []struct{ name, access, secret string }{
		{"wrong secret", e.srv.AccessKey, e.srv.SecretKey + "x"},
		{"unknown access key", "AKIAUNKNOWN", e.srv.SecretKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := e.storeAt(s3test.NewClient(e.srv.Endpoint, tc.access, tc.secret))
			err := s.Save(t.Context(), rec("web", "f1", "ami-0123456789abcdef0"))
			e.assertErr(t, err, e.url("images/web.json"), "access denied: check the AWS credentials")
			assert.Assert(t, !strings.Contains(err.Error(), tc.secret), "secret in error: %v", err)
			e.assertKeys(t)
		})
	}
}

func testHeaders(t *testing.T, e *env) {
	p := s3test.StartProxy(t, e.srv.Endpoint)
	viaProxy := e.storeAt(e.srv.ClientAt(p.URL))
	save(t, viaProxy, rec("web", "f1", "ami-00000000000000001"), rec("web", "f2", "ami-00000000000000002"),
		rec("web", "f1", "ami-00000000000000001"))
	_, err := viaProxy.List(t.Context())
	assert.NilError(t, err)

	conditional := map[string]string{} // PUT path -> its precondition headers, last seen
	for _, r := range p.Requests() {
		for name := range r.Header {
			lower := strings.ToLower(name)
			assert.Assert(t, lower != "x-amz-acl" && !strings.HasPrefix(lower, "x-amz-grant-"),
				"%s %s sent %s", r.Method, r.Path, name)
		}
		if r.Method == http.MethodPut {
			conditional[strings.TrimPrefix(r.Path, "/"+e.srv.Bucket+"/"+e.prefix+"/")] =
				"If-Match=" + r.Header.Get("If-Match") + " If-None-Match=" + r.Header.Get("If-None-Match")
		}
	}
	assert.Equal(t, conditional["index/web/f2.json"], "If-Match= If-None-Match=*")
	assert.Assert(t, is.Regexp(`^If-Match="[^"]+" If-None-Match=$`, conditional["images/web.json"]))
}
