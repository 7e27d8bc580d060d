# The inventory the example playbooks are checked with: three Redis hosts in three zones and the
# Gluu server. Addresses are from the documentation range (RFC 5737).

defaults {
  user        = "root"
  private_key = "~/.ssh/id_ed25519"
  known_hosts = "~/.ssh/known_hosts"
}

host "node1" {
  address = "192.0.2.11"
  vars    = { zone = "a" }
}

host "node2" {
  address = "192.0.2.12"
  vars    = { zone = "b" }
}

host "node3" {
  address = "192.0.2.13"
  vars    = { zone = "c" }
}

host "gluu" {
  address = "192.0.2.5"
}

group "redis" {
  hosts = [host.node1, host.node2, host.node3]
  vars  = { maxmemory = "2gb" }
}

group "gluu" {
  hosts = [host.gluu]
}
