# Values for gluu4.hcl. A var-file holding a secret belongs out of version control, mode 0600.
redis_password     = "example-only-change-me"
ldap_password_file = "secrets/gluu-ldap-password"
