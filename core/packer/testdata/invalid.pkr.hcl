# Fails `packer validate` (an argument the null source does not have); were it ever built, the
# provisioner would write the marker file named by `script`.
variable "image_name" { type = string }
variable "parent_ami" { type = string }
variable "fingerprint" { type = string }
variable "git_commit" { type = string }
variable "playbook" { type = string }
variable "region" { type = string }
variable "script" { type = string }

source "null" "image" {
  communicator  = "none"
  instance_type = "t3.small"
}

build {
  sources = ["source.null.image"]

  provisioner "shell-local" {
    inline = [var.script]
  }
}
