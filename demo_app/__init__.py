"""A small FastAPI service that fails the ways real services do, with lark-alert-middleware added."""
