Welcome to ${name} (zone ${zone}).
%{ for p in ports ~}
redis-server on port ${p}
%{ endfor ~}
%{ if zone == "a" }primary zone%{ else }secondary zone%{ endif }
