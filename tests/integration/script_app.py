"""A short-lived program using the app in process, as scripts and jobs do: errors, then exit.

`python -m tests.integration.script_app N` sends N distinct failing requests through Starlette's
TestClient (lifespan included) and returns; the middleware reads its settings from the environment.
"""

import sys

from starlette.testclient import TestClient

from tests.integration import served_app

with TestClient(served_app.app) as client:
    for status in range(400, 400 + int(sys.argv[1])):
        assert client.get(f"/status/{status}").status_code == status
print("requests done", flush=True)
