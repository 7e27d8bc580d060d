variable "port" {
  type = number
}

tsk "x" { # ERROR: Unsupported block type
}

task "a" {
  retry = 3 # ERROR: Unsupported argument
  ehco { # ERROR: Unknown module
    msg = "x"
  }
}

task "b" {
  echo { # ERROR: Missing required argument
    mesage = "x" # ERROR: Unsupported argument
  }
}
