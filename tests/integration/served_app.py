"""The app uvicorn serves in integration tests; the middleware reads its settings from the environment."""

from tests.apps import failing_app

app = failing_app()
