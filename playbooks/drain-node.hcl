# drain-node.hcl — before planned maintenance of one host: move every master off it, each with a
# safe CLUSTER FAILOVER to a synced replica on another host, so the host can be stopped or
# rebooted without clients waiting for an automatic failover. Its replicas stay.
#
#   runbook apply -i inventory.hcl drain-node.hcl -var node=node2
#   ... maintenance of node2 (its redis-server instances may be stopped, the host rebooted) ...
#   runbook apply -i inventory.hcl site.hcl     # starts what is stopped, brings the masters back
#
# Hosts come from the inventory's group "redis"; the variables match site.hcl's.

variable "node" {
  type        = string
  description = "Inventory name of the host to drain (it must be in group redis)."
}

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

locals {
  # Every instance of the cluster, host by host, in the inventory's order (as in site.hcl).
  cluster = flatten([
    for h in group.redis.hosts : [
      for name, port in var.instances : { host = h.name, address = h.address, name = name, port = port }
    ]
  ])
}

task "redis_drain" {
  on = group.redis
  redis_cluster {
    instances = [for i in local.cluster : { host = i.host, port = i.port }]
    replicas  = var.replicas
    password  = var.redis_password
    drain     = [var.node]
  }
}
