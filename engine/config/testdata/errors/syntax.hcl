task "a" {
  on = [
} # ERROR: Invalid expression
