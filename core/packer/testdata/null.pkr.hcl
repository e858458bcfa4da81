# A stand-in for packer/image.pkr.hcl that needs no plugins and no cloud: Packer's built-in null
# source and shell-local provisioner. It declares the variables amichain passes to every build;
# `script` is what the provisioner runs, set by each test.
variable "image_name" { type = string }
variable "parent_ami" { type = string }
variable "fingerprint" { type = string }
variable "git_commit" {
  type    = string
  default = "unknown"
}
variable "playbook" { type = string }
variable "region" {
  type    = string
  default = "us-east-1"
}
variable "script" { type = string }

source "null" "image" {
  communicator = "none"
}

build {
  sources = ["source.null.image"]

  provisioner "shell-local" {
    inline = [var.script]
    env = {
      IMAGE_NAME  = var.image_name
      FINGERPRINT = var.fingerprint
    }
  }
}
