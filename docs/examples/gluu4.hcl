# gluu4.hcl — point Gluu Server 4.x at the Redis Cluster, with a password, and restart oxAuth and
# oxTrust (identity) when the configuration changed.
#
#   runbook plan  -i inventory.hcl -var redis_password="$REDIS_PASSWORD" gluu4.hcl
#   runbook apply -i inventory.hcl -var redis_password="$REDIS_PASSWORD" gluu4.hcl
#
# or with the values in a var-file (keep it out of version control: mode 0600):
#
#   runbook apply -i inventory.hcl -var-file gluu4.vars.hcl gluu4.hcl

variable "ports" {
  type    = list(number)
  default = [6379, 6380, 6381]
}

variable "redis_password" {
  type        = string
  sensitive   = true
  description = "requirepass of the instances (required); Gluu 4.x stores it encrypted with its salt."
}

variable "ldap_password_file" {
  type        = string
  default     = "secrets/gluu-ldap-password"
  description = "File on this machine holding the bind password of cn=directory manager."
}

variable "restart_command" {
  type        = string
  default     = "systemctl restart oxauth identity"
  description = "How oxAuth and oxTrust are restarted where the task runs (inside Gluu's container)."
}

locals {
  servers = join(",", flatten([
    for h in group.redis.hosts : [for p in var.ports : "${h.address}:${p}"]
  ]))
}

task "gluu_cache" {
  on = host.gluu
  ldap_attribute {
    url           = "ldaps://localhost:1636" # as the gluu host sees it
    via_ssh       = true                     # the TCP connection starts at the gluu host
    bind_dn       = "cn=directory manager,o=gluu"
    password_file = var.ldap_password_file
    gluu_version  = "4"
    dn            = "ou=configuration,o=gluu"
    attribute     = "oxCacheConfiguration"
    json_merge = {
      cacheProviderType = "REDIS"
      redisConfiguration = {
        redisProviderType = "CLUSTER"
        servers           = local.servers
      }
    }
    encrypt_password {
      value     = var.redis_password
      salt_file = "/opt/gluu-server/etc/gluu/conf/salt" # read over SSH from outside the container
    }
  }
  notify = [handler.restart_gluu]
}

handler "restart_gluu" {
  on = host.gluu
  command {
    cmd = var.restart_command
  }
}
