"""The HTTP API (FastAPI), served by gunicorn with uvicorn workers."""
