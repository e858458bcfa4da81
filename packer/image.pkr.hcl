# The one template for every image of the tree (amichain.yaml). The runner passes image_name,
# parent_ami, fingerprint, git_commit, playbook and verify_playbook, plus the image's own vars;
# tests also set the overrides below to build against a local EC2 API and a loopback sshd.

packer {
  required_version = ">= 1.12.0"
  # Pinned exactly, like toolchain.env: a plugin change must be a deliberate version bump.
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.3.6"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = "= 1.1.2"
    }
  }
}

variable "image_name" {
  type        = string
  description = "The image's name in amichain.yaml."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.image_name))
    error_message = "The image_name must be an image name from amichain.yaml (lower-case letters, digits and dashes)."
  }
}

variable "parent_ami" {
  type        = string
  description = "The AMI this image is built FROM: the parent image's AMI, or the upstream OS image."
  validation {
    condition     = can(regex("^ami-[0-9a-z]+$", var.parent_ami))
    error_message = "The parent_ami must be an AMI id (ami-...)."
  }
}

variable "fingerprint" {
  type        = string
  description = "The content fingerprint of the image; its first 12 characters go into the AMI name."
  validation {
    condition     = var.fingerprint != ""
    error_message = "The fingerprint must not be empty."
  }
}

variable "git_commit" {
  type    = string
  default = "unknown"
}

variable "playbook" {
  type        = string
  description = "The Ansible playbook, relative to the repository root (e.g. ansible/web.yml)."
  validation {
    condition     = can(regex("^[^/].*\\.ya?ml$", var.playbook))
    error_message = "The playbook must be a YAML file relative to the repository root, e.g. ansible/web.yml."
  }
}

variable "verify_playbook" {
  type        = string
  default     = ""
  description = "The image's checks (amichain.yaml verify), run after the playbook; a failed check means no AMI. Empty: none."
  validation {
    condition     = var.verify_playbook == "" || can(regex("^[^/].*\\.ya?ml$", var.verify_playbook))
    error_message = "The verify_playbook must be a YAML file relative to the repository root, e.g. ansible/verify/web.yml."
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "copy_regions" {
  type    = list(string)
  default = []
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "volume_size" {
  type    = number
  default = 20
}

variable "ssh_username" {
  type    = string
  default = "admin"
}

# The image's settings in amichain.yaml (core/packer passes only those set). Encryption,
# sharing, IMDS support and tags are part of the image's fingerprint; deprecation is not.

variable "encrypt_boot" {
  type    = bool
  default = false
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "The KMS key of the encrypted AMI; \"\" is the account's default EBS key."
}

variable "region_kms_key_ids" {
  type        = map(string)
  default     = {}
  description = "The KMS key of each copy, by region."
}

variable "ami_users" {
  type    = list(string)
  default = []
}

variable "ami_org_arns" {
  type    = list(string)
  default = []
}

variable "ami_ou_arns" {
  type    = list(string)
  default = []
}

variable "snapshot_users" {
  type    = list(string)
  default = []
}

variable "imds_support" {
  type        = string
  default     = ""
  description = "v2.0: instances launched from the AMI must use IMDSv2."
}

variable "deprecate_after" {
  type        = string
  default     = ""
  description = "How long after the build the AMI is deprecated (a duration, e.g. 2160h); \"\" never."
}

variable "extra_tags" {
  type    = map(string)
  default = {}
}

# Overrides for tests, one setting each. The defaults keep real-AWS behaviour; "" means unset.

variable "ec2_endpoint" {
  type    = string
  default = ""
}

variable "skip_credential_validation" {
  type    = bool
  default = false
}

variable "skip_region_validation" {
  type    = bool
  default = false
}

variable "skip_metadata_api_check" {
  type    = bool
  default = false
}

variable "subnet_id" {
  type    = string
  default = ""
}

variable "security_group_id" {
  type    = string
  default = ""
}

variable "ssh_keypair_name" {
  type    = string
  default = ""
}

variable "ssh_private_key_file" {
  type    = string
  default = ""
}

variable "ssh_host" {
  type    = string
  default = ""
}

variable "ssh_port" {
  type    = number
  default = 22
}

variable "ansible_extra_arguments" {
  type    = list(string)
  default = []
}

locals {
  # Unique per build, so a rebuild of the same fingerprint never collides with an existing AMI.
  ami_name = "${var.image_name}-${substr(var.fingerprint, 0, 12)}-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  # amichain's own tags win over extra_tags (amichain.yaml refuses them anyway).
  tags = merge(var.extra_tags, {
    Name                   = local.ami_name
    "amichain:image"       = var.image_name
    "amichain:fingerprint" = var.fingerprint
    "amichain:parent-ami"  = var.parent_ami
    "amichain:commit"      = var.git_commit
  })
}

# Every builder instance, and the key pair and security group Packer makes for it, carries the
# run's id and an expiry, so that a later run's janitor can remove what a killed run left.
variable "run_id" {
  type        = string
  default     = "unknown"
  description = "The id of the amichain run building this image."
}

variable "builder_lifetime" {
  type        = string
  default     = "6h"
  description = "How long after the start of the build its builder resources may be removed as leftovers (a Go duration, e.g. 6h)."
}

source "amazon-ebs" "image" {
  region          = var.region
  source_ami      = var.parent_ami
  instance_type   = var.instance_type
  ami_name        = local.ami_name
  ami_regions     = var.copy_regions
  ami_description = "amichain ${var.image_name} ${var.fingerprint}"
  tags            = local.tags
  snapshot_tags   = local.tags

  encrypt_boot       = var.encrypt_boot
  kms_key_id         = var.kms_key_id != "" ? var.kms_key_id : null
  region_kms_key_ids = var.region_kms_key_ids
  ami_users          = var.ami_users
  ami_org_arns       = var.ami_org_arns
  ami_ou_arns        = var.ami_ou_arns
  snapshot_users     = var.snapshot_users
  imds_support       = var.imds_support != "" ? var.imds_support : null
  deprecate_at       = var.deprecate_after != "" ? timeadd(timestamp(), var.deprecate_after) : null
  # Lets a leaked builder instance be traced back to its image.
  # run_tags also tag the temporary key pair and security group (packer-plugin-amazon 1.3.6).
  run_tags = {
    Name                   = "amichain-build-${var.image_name}"
    "amichain:image"       = var.image_name
    "amichain:fingerprint" = var.fingerprint
    "amichain:run-id"      = var.run_id
    "amichain:expires-at"  = timeadd(timestamp(), var.builder_lifetime)
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    delete_on_termination = true
  }

  # null leaves the plugin's default (real AWS) in place.
  custom_endpoint_ec2        = var.ec2_endpoint != "" ? var.ec2_endpoint : null
  skip_credential_validation = var.skip_credential_validation
  skip_region_validation     = var.skip_region_validation
  skip_metadata_api_check    = var.skip_metadata_api_check

  subnet_id         = var.subnet_id != "" ? var.subnet_id : null
  security_group_id = var.security_group_id != "" ? var.security_group_id : null

  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_port             = var.ssh_port
  ssh_host             = var.ssh_host != "" ? var.ssh_host : null
  ssh_keypair_name     = var.ssh_keypair_name != "" ? var.ssh_keypair_name : null
  ssh_private_key_file = var.ssh_private_key_file != "" ? var.ssh_private_key_file : null
}

build {
  sources = ["source.amazon-ebs.image"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../${var.playbook}"
    # Ansible connects straight to the instance with the communicator's user and key.
    use_proxy       = false
    extra_arguments = concat(["--extra-vars", "image_name=${var.image_name}"], var.ansible_extra_arguments)
    # Every builder instance is new, with a new host key.
    # Pipelining runs modules over the open SSH session instead of copying files for each task.
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_PIPELINING=True"]
  }

  # The image's checks, on the instance before its AMI is made: a failed check fails the build.
  # An image without checks runs packer/no-checks.yml, which does nothing.
  provisioner "ansible" {
    playbook_file    = var.verify_playbook != "" ? "${path.root}/../${var.verify_playbook}" : "${path.root}/no-checks.yml"
    use_proxy        = false
    extra_arguments  = concat(["--extra-vars", "image_name=${var.image_name}"], var.ansible_extra_arguments)
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_PIPELINING=True"]
  }
}
