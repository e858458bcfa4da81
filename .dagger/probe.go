package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"dagger/amichain/internal/dagger"
)

// ProbeContainer (throwaway) fetches url from the toolchain container with svc bound as "s3".
// +cache="never"
func (m *Amichain) ProbeContainer(ctx context.Context,
	url string,
	// +optional
	svc *dagger.Service,
) (string, error) {
	ctr, err := m.toolchain(ctx)
	if err != nil {
		return "", err
	}
	if svc != nil {
		ctr = ctr.WithServiceBinding("s3", svc)
	}
	return ctr.WithEnvVariable("BUST", time.Now().String()).
		WithExec([]string{"python3", "-c", "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read()[:100])", url}).
		Stdout(ctx)
}

// ProbeModule (throwaway) fetches url (or svc's endpoint when url is empty) from module code.
// +cache="never"
func (m *Amichain) ProbeModule(ctx context.Context,
	// +optional
	svc *dagger.Service,
	// +optional
	url string,
) (string, error) {
	if svc != nil {
		s, err := svc.Start(ctx)
		if err != nil {
			return "", fmt.Errorf("start: %w", err)
		}
		ep, err := s.Endpoint(ctx, dagger.ServiceEndpointOpts{Scheme: "http"})
		if err != nil {
			return "", fmt.Errorf("endpoint: %w", err)
		}
		url = ep
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	return fmt.Sprintf("GET %s: %s %q", url, resp.Status, b), nil
}
