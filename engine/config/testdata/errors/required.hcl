variable "needed" { # ERROR: No value for required variable
  type = string
}
