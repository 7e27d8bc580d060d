# site.hcl — the seed's Redis Cluster for Gluu Server, as one playbook.
#
# Fresh install:     runbook apply -i inventory.hcl site.hcl
# Node replacement:  the same command, after a lost host is back (empty disk or not): it promotes
#                    replicas of the lost masters BEFORE any redis-server starts on the host, then
#                    provisions it and restores the layout (a master on every host, each master's
#                    replicas on the other hosts), with no key lost.
# Gluu:              add -var-file ldap.vars.hcl (gluu_ldap_url, gluu_ldap_bind_dn,
#                    gluu_ldap_password_file) to point Gluu's cache configuration at the cluster.
#
# Hosts come from the inventory's group "redis".

variable "instances" {
  type        = map(number)
  default     = { a = 6379, b = 6380, c = 6381 }
  description = "redis-server instances on every host: name => port."
}

variable "replicas" {
  type        = number
  default     = 2
  description = "Replicas per master."
}

variable "redis_password" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Password of every instance (requirepass and masterauth). Empty: no password."
}

variable "allow_takeover" {
  type        = bool
  default     = false
  description = <<-EOT
    Let a replica take over its dead master's slots with CLUSTER FAILOVER TAKEOVER when fewer than
    a majority of masters are alive (two of three hosts lost): the cluster cannot vote then, and
    runbook refuses until you decide. Set it only when the lost hosts are really down (not merely
    cut off), for one run: -var allow_takeover=true.
  EOT
}

variable "gluu_ldap_url" {
  type        = string
  default     = ""
  description = "Gluu's LDAP server, e.g. ldaps://gluu.example.org:1636. Empty: leave Gluu alone."
}

variable "gluu_ldap_bind_dn" {
  type    = string
  default = "cn=directory manager,o=gluu"
}

variable "gluu_ldap_password_file" {
  type        = string
  default     = ""
  description = "File (on this machine) holding the bind password."
}

variable "gluu_ldap_ca_file" {
  type        = string
  default     = ""
  description = "CA certificate to verify an ldaps:// server with."
}

variable "gluu_version" {
  type    = string
  default = "4"
  validation {
    condition     = contains(["4", "3.1"], var.gluu_version)
    error_message = "gluu_version must be \"4\" or \"3.1\"."
  }
}

locals {
  # Every instance of the cluster, host by host, in the inventory's order.
  cluster = flatten([
    for h in group.redis.hosts : [
      for name, port in var.instances : { host = h.name, address = h.address, name = name, port = port }
    ]
  ])
  redis_servers = join(",", [for i in local.cluster : "${i.address}:${i.port}"])

  # The first instance of every host (in name order: a) is the one redis_cluster makes the host's
  # master, when it creates the cluster and when it gives a replaced host its master back. Redis
  # lets a master serve no sooner than 2 s after its process started (cluster_state stays fail:
  # CLUSTER_WRITABLE_DELAY), so that start is the critical path of an install: the first instance
  # is configured and started before the others, which then start, meet and sync within those
  # 2 s instead of competing with it. On the lab, where every host shares two cores, a fresh
  # install of 3 hosts takes 2.77 s instead of 3.22 s (medians) when all three start together;
  # at 30 hosts it costs instead (17.7 s against 16.1 s): every task waits for the tasks it
  # depends on to finish on all hosts, and the split adds two such waits.
  first_instance = sort(keys(var.instances))[0]
  first          = { for name, port in var.instances : name => port if name == local.first_instance }
  others         = { for name, port in var.instances : name => port if name != local.first_instance }
}

# Which init system the host has: systemd units where there is one, plain processes (pidfile +
# liveness) where there is not. Read-only, so it also runs in plan.
task "init_system" {
  on = group.redis
  command {
    cmd      = "if [ -d /run/systemd/system ]; then echo systemd; else echo process; fi"
    readonly = true
  }
}

task "redis_packages" {
  on = group.redis
  package {
    names = ["redis-server", "redis-tools"]
  }
}

# Debian's own redis-server.service listens on 127.0.0.1:6379; the cluster's instances replace it.
task "distro_redis_off" {
  on         = group.redis
  depends_on = [task.redis_packages]
  when       = trimspace(task.init_system[self.name].stdout) == "systemd"
  service {
    name    = "redis-server"
    backend = "systemd"
    state   = "stopped"
    enabled = false
  }
}

task "redis_dirs" {
  on         = group.redis
  depends_on = [task.redis_packages]
  for_each   = { etc = "/etc/redis", lib = "/var/lib/redis", log = "/var/log/redis", run = "/run/redis" }
  directory {
    path  = each.value
    owner = "redis"
    group = "redis"
    mode  = "0750"
  }
}

task "redis_unit" {
  on         = group.redis
  depends_on = [task.redis_packages]
  when       = trimspace(task.init_system[self.name].stdout) == "systemd"
  file {
    dest    = "/etc/systemd/system/redis-cluster@.service"
    content = file("../templates/redis-cluster@.service")
    mode    = "0644"
  }
}

# The first instance of every host (local.first), then the others (local.others): see locals.
task "redis_config_first" {
  on         = group.redis
  for_each   = local.first
  depends_on = [task.redis_dirs]
  template {
    source = "../templates/redis.conf"
    dest   = "/etc/redis/${each.key}.conf"
    owner  = "redis"
    group  = "redis"
    mode   = "0640"
    vars = {
      name     = each.key
      port     = each.value
      address  = self.address
      password = var.redis_password
    }
  }
}

# Promote before provisioning: a master whose host died (or came back empty) is replaced by its
# most up-to-date replica BEFORE an empty redis-server starts at its old address — otherwise its
# replicas would resync from the empty instance and the shard's data would be wiped.
task "redis_promote" {
  on = group.redis
  redis_cluster {
    mode           = "prepare"
    instances      = [for i in local.cluster : { host = i.host, port = i.port }]
    replicas       = var.replicas
    password       = var.redis_password
    allow_takeover = var.allow_takeover
  }
}

task "redis_start_first" {
  on         = group.redis
  for_each   = local.first
  depends_on = [task.redis_config_first, task.redis_promote, task.redis_unit, task.distro_redis_off]
  service {
    # systemd unit where the host has systemd, a plain process watched by its pidfile elsewhere;
    # setpriv (util-linux) switches to the redis user with a plain execve: unlike runuser or su it
    # runs no PAM stack (on the lab 9 ms of CPU per start instead of 21)
    backend = "auto"
    name    = "redis-cluster@${each.key}"
    enabled = true
    pidfile = "/run/redis/redis-${each.key}.pid"
    start   = "setpriv --reuid=redis --regid=redis --init-groups redis-server /etc/redis/${each.key}.conf"
    match   = "redis-server"
  }
}

task "redis_config" {
  on         = group.redis
  for_each   = local.others
  depends_on = [task.redis_dirs, task.redis_start_first]
  template {
    source = "../templates/redis.conf"
    dest   = "/etc/redis/${each.key}.conf"
    owner  = "redis"
    group  = "redis"
    mode   = "0640"
    vars = {
      name     = each.key
      port     = each.value
      address  = self.address
      password = var.redis_password
    }
  }
}

task "redis_start" {
  on         = group.redis
  for_each   = local.others
  depends_on = [task.redis_config, task.redis_promote, task.redis_unit, task.distro_redis_off]
  service {
    # as redis_start_first
    backend = "auto"
    name    = "redis-cluster@${each.key}"
    enabled = true
    pidfile = "/run/redis/redis-${each.key}.pid"
    start   = "setpriv --reuid=redis --regid=redis --init-groups redis-server /etc/redis/${each.key}.conf"
    match   = "redis-server"
  }
}

task "redis_listening" {
  on         = group.redis
  for_each   = var.instances
  depends_on = [task.redis_start_first, task.redis_start]
  wait_for {
    host    = self.address
    port    = each.value
    timeout = "30s"
  }
}

# Create the cluster, or converge it to the declared layout: a master on every host, each
# master's replicas on other hosts, every replica synced.
task "redis_cluster" {
  on         = group.redis
  depends_on = [task.redis_listening]
  redis_cluster {
    instances      = [for i in local.cluster : { host = i.host, port = i.port }]
    replicas       = var.replicas
    password       = var.redis_password
    allow_takeover = var.allow_takeover
  }
}

# Gluu Server's cache configuration (oxCacheConfiguration) pointed at every instance of the cluster.
# oxAuth and oxTrust read it at start: restart them afterwards.
task "gluu_cache" {
  on         = group.redis
  depends_on = [task.redis_cluster]
  when       = var.gluu_ldap_url != ""
  ldap_attribute {
    url           = var.gluu_ldap_url
    bind_dn       = var.gluu_ldap_bind_dn
    password_file = var.gluu_ldap_password_file
    ca_file       = var.gluu_ldap_ca_file
    gluu_version  = var.gluu_version
    search {
      base   = var.gluu_version == "4" ? "o=gluu" : "ou=appliances,o=gluu"
      filter = var.gluu_version == "4" ? "(objectClass=gluuConfiguration)" : "(objectClass=gluuAppliance)"
    }
    attribute = "oxCacheConfiguration"
    json_merge = {
      cacheProviderType = "REDIS"
      redisConfiguration = {
        redisProviderType = "CLUSTER"
        servers           = local.redis_servers
      }
    }
  }
}

# A changed configuration reaches the running instances through a rolling restart, one instance at
# a time: replicas first, then each master after a safe failover to a synced replica on another
# host (and back once it is synced again). Only instances whose configuration file is newer than
# their process restart; each is synced, and agreed on by the whole cluster, before the next.
# It is a task, not a handler, so that a restart cut short (a host lost, the run interrupted) is
# finished by the next apply: what needs a restart is read from the hosts, not remembered.
task "redis_rolling_restart" {
  on         = group.redis
  depends_on = [task.redis_cluster]
  redis_cluster {
    mode      = "restart"
    instances = [for i in local.cluster : { host = i.host, port = i.port }]
    replicas  = var.replicas
    password  = var.redis_password
    # read ahead with each host's checks: an unchanged cluster costs no command of its own
    config_files = { for i in local.cluster : "${i.host}:${i.port}" => "/etc/redis/${i.name}.conf" }
    # systemd hosts restart the unit; elsewhere the process (pidfile) is stopped and started as
    # the service task starts it.
    restart_command = <<-EOT
      if [ -d /run/systemd/system ]; then systemctl restart redis-cluster@{name}; else
        kill {pid} && while kill -0 {pid} 2>/dev/null; do sleep 0.05; done &&
        setpriv --reuid=redis --regid=redis --init-groups redis-server {config_file}; fi
    EOT
  }
}
