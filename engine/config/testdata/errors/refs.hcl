variable "name" {
  default = "x"
}

task "a" {
  echo {
    msg = var.nam # ERROR: Reference to undeclared input variable
  }
}

task "b" {
  echo {
    msg = each.key # ERROR: Unknown variable
  }
}

task "b2" {
  echo {
    msg   = "x"
    count = "many" # ERROR: Unsuitable value type
  }
}

task "c" {
  on = host.nod1 # ERROR: Reference to undeclared host
  echo {
    msg = task.zz.node1.stdout # ERROR: Reference to undeclared task
  }
}

task "d" {
  echo { # ERROR: Invalid echo configuration
    msg   = "ok"
    count = -1
  }
}
