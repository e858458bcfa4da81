package fingerprint

// Input is one thing an image is made from and the digest of its content. Names are stable
// and machine-independent: "file:ansible/roles/nginx/tasks/main.yml", "tool:packer",
// "parent-ami", "scheme", "image" (the image's own entry in the tree).
type Input struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}
