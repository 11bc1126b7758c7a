"""Signing in to the dashboard as a browser does: the form first (its CSRF token and cookie), then the post."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def form_token(browser: TestClient) -> str:
    """The CSRF token of the sign-in form this browser was given (its cookie comes with it)."""
    return re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text).group(1)


def sign_in(browser: TestClient, name: str, password: str, next: str | None = None):
    """Post the sign-in form as this browser, from the form the server gave it."""
    data = {"name": name, "password": password, "csrf": form_token(browser), **({"next": next} if next else {})}
    return browser.post("/login", data=data)
