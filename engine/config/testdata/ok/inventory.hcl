defaults {
  user        = "root"
  private_key = "/keys/id"
}

host "node1" {
  address = "10.0.0.1"
  vars    = { zone = "a" }
}

host "node2" {
  address     = "10.0.0.2"
  port        = 2222
  private_key = "keys/node2"
}

group "redis" {
  hosts = [host.node1, "node2"]
  vars  = { zone = "b" }
}
