"""Web apps: the counselor chat and the human-rating app (Gradio), and rating storage.

``ratings`` (items, blinding, SQLite storage, CSV export) imports no web
library; ``chat_app`` and ``rating_app`` import Gradio, so import them only when serving.
"""
