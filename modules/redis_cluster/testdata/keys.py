# Writes or checks keys through redis-py's RedisCluster client.
# usage: keys.py write|check HOST PORT COUNT PREFIX
import sys

from redis.cluster import ClusterNode, RedisCluster

mode, host, port, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rc = RedisCluster(startup_nodes=[ClusterNode(host, port)], socket_timeout=5)
pipe = rc.pipeline()
if mode == "write":
    for i in range(count):
        pipe.set(f"{prefix}:{i}", f"v{i}")
    pipe.execute()
    print(count)
else:
    for i in range(count):
        pipe.get(f"{prefix}:{i}")
    res = pipe.execute()
    missing = [i for i, v in enumerate(res) if v != f"v{i}".encode()]
    print(len(missing))
    sys.exit(1 if missing else 0)
