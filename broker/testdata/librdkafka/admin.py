"""librdkafka's admin client (Debian's python3-confluent-kafka) driven by Go tests.

usage: admin.py BOOTSTRAP COMMAND JSON_ARGS; prints one JSON document with the
outcome of each operation: {"<name>": "" on success or the Kafka error text}.
"""
import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions,
                                   NewTopic)


def outcome(futures):
    out = {}
    for name, f in futures.items():
        try:
            f.result(timeout=30)
            out[getattr(name, "name", name)] = ""
        except KafkaException as e:
            err = e.args[0]
            out[getattr(name, "name", name)] = "%s: %s" % (err.name(), err.str())
    return out


def main():
    bootstrap, command, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    if command == "create_topics":
        topics = []
        for t in args:
            if t.get("assignment"):
                # The binding wants num_partitions to match the assignment;
                # librdkafka then sends NumPartitions = ReplicationFactor = -1.
                topics.append(NewTopic(t["name"], num_partitions=len(t["assignment"]),
                                       replica_assignment=t["assignment"], config=t.get("config", {})))
            else:
                topics.append(NewTopic(t["name"], num_partitions=t.get("partitions", -1),
                                       replication_factor=t.get("replication_factor", -1),
                                       config=t.get("config", {})))
        out = outcome(admin.create_topics(topics, request_timeout=30))
    elif command == "create_partitions":
        parts = [NewPartitions(p["name"], p["count"], replica_assignment=p.get("assignment")) for p in args]
        out = outcome(admin.create_partitions(parts, request_timeout=30))
    elif command == "alter_configs":
        res = [ConfigResource(r["type"], r["name"], set_config=r["set"]) for r in args]
        out = outcome(admin.alter_configs(res, request_timeout=30))
    elif command == "describe_configs":
        res = [ConfigResource(r["type"], r["name"]) for r in args]
        out = {}
        for r, f in admin.describe_configs(res, request_timeout=30).items():
            try:
                out[r.name] = {k: {"value": v.value, "source": v.source, "read_only": v.is_read_only}
                               for k, v in f.result(timeout=30).items()}
            except KafkaException as e:
                out[r.name] = {"error": e.args[0].str()}
    else:
        raise SystemExit("unknown command " + command)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
