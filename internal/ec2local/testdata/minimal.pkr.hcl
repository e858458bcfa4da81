# A minimal amazon-ebs build against ec2local: the instance is the test's loopback sshd, and the
# shell provisioner proves that Packer really ran a command over SSH.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "1.3.6"
    }
  }
}

variable "ec2_endpoint" { type = string }
variable "source_ami" { type = string }
variable "ami_name" { type = string }
variable "subnet_id" { type = string }
variable "security_group_id" { type = string }
variable "ssh_username" { type = string }
variable "ssh_port" { type = number }
variable "ssh_private_key_file" { type = string }
variable "marker_file" { type = string }

source "amazon-ebs" "test" {
  region                     = "us-east-1"
  custom_endpoint_ec2        = var.ec2_endpoint
  skip_credential_validation = true
  skip_region_validation     = true
  skip_metadata_api_check    = true

  source_ami           = var.source_ami
  instance_type        = "t3.small"
  ami_name             = var.ami_name
  subnet_id            = var.subnet_id
  security_group_id    = var.security_group_id
  ssh_keypair_name     = "amichain-test"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_username         = var.ssh_username
  ssh_port             = var.ssh_port

  tags = {
    Name       = "ec2local-test"
    source-ami = "{{ .SourceAMI }}"
  }
}

build {
  sources = ["source.amazon-ebs.test"]

  provisioner "shell" {
    inline = ["echo provisioned > ${var.marker_file}"]
  }
}
