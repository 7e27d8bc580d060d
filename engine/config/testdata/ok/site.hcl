variable "greeting" {
  type = string
}

variable "password" {
  type      = string
  default   = ""
  sensitive = true
}

variable "ports" {
  type    = map(number)
  default = { a = 6379 }
  validation {
    condition     = length(var.ports) > 0
    error_message = "At least one port."
  }
}

locals {
  prefix = "${var.greeting}-"
  all    = [for h in group.redis.hosts : h.address]
}

task "configure" {
  on       = group.redis
  for_each = var.ports
  echo {
    msg = "${self.name}:${each.value} zone-${self.vars.zone}"
  }
}

task "report" {
  on = host.node1
  echo {
    msg = task.configure.node1.stdout
  }
}
