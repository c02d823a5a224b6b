"""The app uvicorn serves for failures other than failing responses: background tasks, streams, websockets."""

from tests.apps import beyond_requests_app

app = beyond_requests_app()
