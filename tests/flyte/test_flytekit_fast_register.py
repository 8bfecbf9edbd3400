"""flytekit's fast registration against the mock: the code archive goes through DataProxyService.

``FlyteRemote.register_script`` packs the module, asks CreateUploadLocation for a location (md5 and
filename), PUTs the archive to the signed URL with Content-MD5 (the mock's HTTP port), and registers
the workflow with that native URL as its distribution; the execution then runs on the simulated
propeller. The server's virtual clock runs 50 times faster than wall time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import pathlib
from collections.abc import Iterator

import flytekit_app
import pytest
import requests
from flytekit.configuration import Config, ImageConfig, PlatformConfig
from flytekit.models.core.execution import WorkflowExecutionPhase
from flytekit.models.project import Project
from flytekit.remote import FlyteRemote
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer

PROJECT, DOMAIN = "fastreg", "development"
POLL = datetime.timedelta(seconds=0.1)
TIMEOUT = datetime.timedelta(seconds=30)
HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(ServerConfig(clock_speed=50, grace_seconds=0.2, families=("flyte",))) as running:
        yield running


@pytest.fixture(scope="module")
def remote(server: ThreadedServer) -> FlyteRemote:
    config = Config(platform=PlatformConfig(endpoint=server.grpc_address, insecure=True))
    made = FlyteRemote(config, default_project=PROJECT, default_domain=DOMAIN)
    made.client.register_project(Project(PROJECT, "Fast registration", "flytekit's fast registration"))
    return made


def test_fast_registration_uploads_the_code_and_the_workflow_runs(
    remote: FlyteRemote, server: ThreadedServer
) -> None:
    registered = remote.register_script(
        flytekit_app.calc,
        image_config=ImageConfig.auto_default_image(),
        source_path=str(HERE),
        module_name="flytekit_app",
    )
    task = remote.fetch_task(name="flytekit_app.add", version=registered.id.version)
    args = list(task.template.container.args)
    assert args[0] == "pyflyte-fast-execute"
    where = args[args.index("--additional-distribution") + 1]  # the archive's native URL, from the upload
    assert where.startswith("s3://protoconform-flyte/uploads/fastreg/development/")
    assert where.endswith("/script_mode.tar.gz")
    stored = server.run(lambda: server.server.states["flyte"].store.get_object(where))
    assert stored is not None and len(stored) > 0
    # the uploaded archive is what flytekit hashed: the folder is base32 of its md5
    assert hashlib.md5(stored).digest() == base64.b32decode(where.rsplit("/", 2)[1])

    execution = remote.execute(registered, inputs={"a": 2, "b": 40})
    done = remote.wait(execution, timeout=TIMEOUT, poll_interval=POLL)
    assert done.closure.phase == WorkflowExecutionPhase.SUCCEEDED
    assert done.outputs["o0"] == 82


def test_uploads_with_a_wrong_md5_or_after_expiry_are_refused(
    remote: FlyteRemote, server: ThreadedServer
) -> None:
    body = b"print('hello')\n"
    md5 = hashlib.md5(body).digest()
    made = remote.client.get_upload_signed_url(
        PROJECT, DOMAIN, content_md5=md5, filename="x.py", expires_in=datetime.timedelta(seconds=5)
    )
    other = hashlib.md5(b"another file").digest()
    wrong = requests.put(made.signed_url, data=body, headers={"Content-MD5": _b64(other)}, timeout=10)
    assert wrong.status_code == 403
    server.run(lambda: server.server.clock.advance(6))
    late = requests.put(made.signed_url, data=body, headers={"Content-MD5": _b64(md5)}, timeout=10)
    assert late.status_code == 403 and "expired" in late.text
    assert server.run(lambda: server.server.states["flyte"].store.get_object(made.native_url)) is None


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
