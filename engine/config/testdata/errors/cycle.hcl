task "a" { # ERROR: Dependency cycle
  depends_on = [task.b]
  echo {
    msg = "a"
  }
}

task "b" {
  echo {
    msg = task.a.node1.stdout
  }
}
