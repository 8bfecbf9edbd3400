"""Load tools: ``protoconform load`` and its locust suites, and benchmark scripts.

- :mod:`.grpc_user`: a locust ``User`` for gRPC (one channel per user, every call a request event);
- :mod:`.scenarios`: workflows per API family (ArmoniK, KFP over gRPC and REST, Flyte);
- :mod:`.locustfile`: what locust runs, with the run's request budget and progress line;
- :mod:`.cli`: the ``protoconform load`` command (locust in a child process, reports, thresholds);
- ``benchmarks/``: scripts that print their figures against a baseline they start themselves.

This is the top layer: it imports the specs, the harness's request builders and the mock's
launcher, and nothing imports it -- locust gevent-patches the interpreter it is imported in.
"""
