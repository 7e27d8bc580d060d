# tour.hcl — every construct of the language in one playbook.
#
#   runbook validate -i inventory.hcl tour.hcl
#   runbook plan     -i inventory.hcl -var ports='[6379, 6380]' tour.hcl

variable "ports" {
  type        = list(number)
  default     = [6379, 6380, 6381]
  description = "Ports of the redis-server instances on every host."
  validation {
    condition     = length(var.ports) > 0 && alltrue([for p in var.ports : p > 1024])
    error_message = "ports must list at least one port above 1024."
  }
}

variable "api_token" {
  type      = string
  default   = ""
  sensitive = true # redacted from every line runbook prints; refused on a remote command line
}

locals {
  # locals may use var, host, group, functions and other locals (in any order)
  names    = { for i, p in var.ports : substr("abcdefghij", i, 1) => p }
  everyone = join(",", [for h in group.redis.hosts : "${h.address}:${var.ports[0]}"])
}

# A read-only command runs in plan too, so later tasks can use its output in plan.
task "kernel" {
  on = group.redis
  command {
    cmd      = "uname -r"
    readonly = true
  }
}

task "motd" {
  on = group.redis
  template {
    source = "templates/motd.tpl"
    dest   = "/etc/motd"
    mode   = "0644"
    vars = {
      name  = self.name          # self: the host this instance runs on
      zone  = self.vars.zone     # host vars merged over group vars
      ports = var.ports
    }
  }
}

# for_each over a map: one instance per key, named conf[a], conf[b], ...
task "conf" {
  on       = group.redis
  for_each = local.names
  file {
    dest    = "/etc/example/${each.key}.conf"
    content = "port ${each.value}\nkernel ${trimspace(task.kernel[self.name].stdout)}\n"
    mode    = "0640"
  }
  notify = [handler.reload]
}

# when: skipped where false. Reading task.kernel makes this task wait for it.
task "only_new_kernels" {
  on   = group.redis
  when = tonumber(split(".", trimspace(task.kernel[self.name].stdout))[0]) >= 6
  command {
    cmd     = "touch /var/tmp/new-kernel"
    creates = "/var/tmp/new-kernel"
  }
}

# serial: two hosts at a time; depends_on: ordering without reading an output.
task "rolling" {
  on         = group.redis
  serial     = 2
  depends_on = [task.conf]
  command {
    cmd    = "systemctl try-restart example.service"
    unless = "test -e /var/tmp/no-restart"
  }
}

# retries, delay and until: apply runs the task again until until is true (result is its outputs).
task "healthy" {
  on         = group.redis
  depends_on = [task.rolling]
  retries    = 5
  delay      = "2s"
  until      = trimspace(result.stdout) == "PONG"
  command {
    cmd      = "redis-cli -p ${var.ports[0]} ping"
    readonly = true
  }
}

# run_once: a single instance, on the first host of `on`.
task "announce" {
  on         = group.redis
  run_once   = true
  depends_on = [task.healthy]
  command {
    cmd   = "logger -t runbook \"cluster members: ${local.everyone}\""
    stdin = var.api_token # secrets go on stdin, never on the command line
  }
}

# Handlers run after every task, once per host that notified them, in declaration order.
handler "reload" {
  on = group.redis # without `on`, every inventory host would be connected to
  service {
    name  = "example"
    state = "restarted"
  }
}
