"""``napari-vlsm serve``: one model and its adapters on a GPU workstation, for laptops without one.

FastAPI + uvicorn; see docs/server.md. ``app.create_app`` builds the ASGI app around a
``host.ModelHost`` (the loaded model, engines per adapter, the projects' stores and adapters).
"""
