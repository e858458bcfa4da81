package s3test_test

import (
	"net/http"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/internal/s3test"
)

func TestProxyFailsThenPassesThrough(t *testing.T) {
	srv := s3test.StartFake(t)
	p := s3test.StartProxy(t, srv.Endpoint)
	p.FailNext(2)
	var hooked []string
	p.OnRequest(func(r *http.Request) { hooked = append(hooked, r.URL.Path) })

	tests := []struct {
		path   string
		status int
	}{
		{"/" + srv.Bucket, http.StatusInternalServerError},
		{"/" + srv.Bucket, http.StatusInternalServerError},
		{"/" + srv.Bucket, http.StatusOK}, // an unsigned ListObjects: gofakes3 does not check
	}
	for _, tc := range tests {
		resp, err := http.Get(p.URL + tc.path)
		assert.NilError(t, err)
		resp.Body.Close()
		assert.Equal(t, resp.StatusCode, tc.status)
	}
	reqs := p.Requests()
	assert.Equal(t, len(reqs), 3)
	assert.Assert(t, reqs[0].Failed && reqs[1].Failed && !reqs[2].Failed)
	assert.DeepEqual(t, hooked, []string{"/" + srv.Bucket}) // the hook sees only what is passed on
}
