host "node1" { address = "10.0.0.1" }
host "node2" { address = "10.0.0.2" }
host "node3" { address = "10.0.0.3" }

group "all" {
  hosts = [host.node1, host.node2, host.node3]
}

task "install" {
  on = group.all
  mark {
    name = "installed"
  }
}

task "config" {
  on         = group.all
  for_each   = toset(["a", "b"])
  depends_on = [task.install]
  notify     = [handler.restart]
  mark {
    name = "config-${each.key}"
  }
}

task "read" {
  on = host.node1
  mark {
    name = "read-${task.config.node1.a.value}"
  }
}

handler "restart" {
  mark {
    name = "restarted"
    always = true
  }
}
