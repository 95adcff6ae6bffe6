"""Helpers for driving the web apps in headless Chromium (selenium)."""
