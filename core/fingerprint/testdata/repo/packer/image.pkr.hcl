variable "image_name" { type = string }
variable "parent_ami" { type = string }
source "amazon-ebs" "image" {
  source_ami = var.parent_ami
  ami_name   = var.image_name
}
build { sources = ["source.amazon-ebs.image"] }
