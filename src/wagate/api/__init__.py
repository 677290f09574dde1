"""The HTTP API: FastAPI app factory, routers, auth and error handling."""
