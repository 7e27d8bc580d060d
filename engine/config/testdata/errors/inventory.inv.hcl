host "node1" {
  address = "10.0.0.1"
}

host "node1" { # ERROR: Duplicate host "node1"
  address = "10.0.0.2"
}

host "node2" { # ERROR: Missing required argument
}

group "redis" {
  hosts = [host.node1, "node3"] # ERROR: Unknown host
}
