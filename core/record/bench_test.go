package record_test

import (
	"fmt"
	"testing"

	"github.com/amichain/amichain/core/record"
)

// BenchmarkStore measures one Save (5 requests) and one Current (1 request) per server.
func BenchmarkStore(b *testing.B) {
	for _, srv := range servers() {
		b.Run(srv.name, func(b *testing.B) {
			server := srv.start(b)
			s := record.NewStore(server.Client, record.Config{Bucket: server.Bucket, Prefix: "bench"})
			b.Run("Save", func(b *testing.B) {
				i := 0
				for b.Loop() {
					i++
					if err := s.Save(b.Context(), rec("web", fmt.Sprintf("f%d", i), "ami-0123456789abcdef0")); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Current", func(b *testing.B) {
				for b.Loop() {
					if r, err := s.Current(b.Context(), "web"); err != nil || r == nil {
						b.Fatal(r, err)
					}
				}
			})
		})
	}
}
