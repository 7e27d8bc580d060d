# gluu31.hcl — point Gluu Server 3.1.x at the Redis Cluster. Its cache configuration lives on the
# appliance entry (inum=...,ou=appliances,o=gluu), found by a search; 3.1.x connects to a Redis
# Cluster without a password, so the instances must not require one.

variable "ports" {
  type    = list(number)
  default = [6379, 6380, 6381]
}

locals {
  servers = join(",", flatten([
    for h in group.redis.hosts : [for p in var.ports : "${h.address}:${p}"]
  ]))
}

task "gluu_cache" {
  on = host.gluu
  ldap_attribute {
    url           = "ldaps://localhost:1636"
    via_ssh       = true
    bind_dn       = "cn=directory manager"
    password_file = "secrets/gluu-ldap-password"
    gluu_version  = "3.1"
    search {
      base   = "ou=appliances,o=gluu"
      filter = "(objectClass=gluuAppliance)"
    }
    attribute = "oxCacheConfiguration"
    json_merge = {
      cacheProviderType = "REDIS"
      redisConfiguration = {
        redisProviderType = "CLUSTER"
        servers           = local.servers
      }
    }
  }
  notify = [handler.restart_gluu]
}

handler "restart_gluu" {
  on = host.gluu
  command {
    cmd = "service oxauth restart && service identity restart"
  }
}
