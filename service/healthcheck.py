"""The image's HEALTHCHECK: exit 0 if GET /healthz answers 200 on this container's port, else 1.

The slim base image has no curl; this uses only the standard library and the service's settings.
"""

from __future__ import annotations

import sys
import urllib.request

from service.core.config import Settings


def main() -> int:
    url = f"http://127.0.0.1:{Settings().port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
