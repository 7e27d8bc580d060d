port = "not a number" # ERROR: Invalid value for variable
