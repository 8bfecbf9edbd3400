"""A flytekit workflow for the end-to-end test: the mock's simulated propeller computes ``add``."""

from flytekit import task, workflow


@task
def add(a: int, b: int) -> int:
    return a + b


@task(retries=2)
def concat(x: str, y: str) -> str:
    return x + y


@workflow
def calc(a: int, b: int) -> int:
    return add(a=add(a=a, b=b), b=b)


@workflow
def words(x: str, y: str) -> str:
    return concat(x=x, y=y)
