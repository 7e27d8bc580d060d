task "a" {
  on = group.redis
  echo {
    msg = "x"
  }
}
