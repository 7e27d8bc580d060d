host "node1" {
  address = "10.0.0.1"
}
