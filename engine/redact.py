"""Keeping Hugging Face tokens out of everything modelwiz writes or shows.

A token reaches modelwiz only through the environment (`HF_TOKEN` and its older names) or
huggingface_hub's own login; it is passed to the Hub client and to the trainer process and
nowhere else: no config key holds one, and plans, events, status, model cards and reports never
name it. `redact` is the last line of defence for text built from outside sources (a library's
error message, an endpoint URL): it replaces any token-shaped string and the credentials of a
URL with `***`.
"""

from __future__ import annotations

import os
import re

TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "HF_API_TOKEN")
# Hub user access tokens are "hf_" and 34 letters and digits; older API tokens "api_..."
_TOKEN = re.compile(r"\b(?:hf|api)_[A-Za-z0-9]{30,}\b")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]+(?::[^/\s@]*)?@")
_BEARER = re.compile(r"(?i)(\bbearer\s+)\S+")
MASK = "***"


def redact(text: str) -> str:
    """`text` with Hugging Face tokens (those in the environment and any token-shaped string),
    bearer credentials and URL user:password parts replaced by ***."""
    for name in TOKEN_VARIABLES:
        value = os.environ.get(name, "").strip()
        if len(value) >= 8:
            text = text.replace(value, MASK)
    text = _TOKEN.sub(MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _URL_CREDENTIALS.sub(MASK + "@", text)
