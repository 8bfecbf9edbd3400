"""Stateful, reflection-enabled gRPC/REST mock server for Flyte, Kubeflow Pipelines and ArmoniK."""
