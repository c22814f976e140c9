"""The Content-Security-Policy of the GraphiQL page, derived from the page itself."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_ASSET = re.compile(r'(?:src|href)="(https://[^"]+)"')


def content_security_policy(html: str) -> str:
    """Allow the page's own inline script (by hash), its asset hosts and this origin, and nothing else.

    Hashing the inline script rather than allowing 'unsafe-inline' means a script injected into the page
    (through a query string, say) does not run.
    """
    hashes = " ".join(f"'sha256-{_sha256(script)}'" for script in _INLINE_SCRIPT.findall(html))
    hosts = " ".join(sorted({_origin(url) for url in _ASSET.findall(html)}))
    directives = [
        "default-src 'none'",
        f"script-src {hosts} {hashes}".strip(),
        f"style-src {hosts} 'unsafe-inline'".strip(),  # GraphiQL sets style attributes as it runs
        f"font-src {hosts} data:".strip(),
        "img-src 'self' data:",
        "connect-src 'self'",  # HTTP and websocket requests to this server only
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def _sha256(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
